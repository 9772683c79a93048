"""Image files checked before training: every file a split will read must decode.

A corrupt, truncated or empty image otherwise surfaces inside the first training iteration as a
DataLoader worker traceback. :func:`check_images` opens each file with Pillow and decodes it fully
(``Image.load()``: ``verify()`` alone misses truncated pixel data of some formats); files seen
before with the same size and modification time are not decoded again (a cache under
:func:`otxlike.fileio.cache_dir`), so the check costs seconds only the first time.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from otxlike.errors import OtxlikeError
from otxlike.fileio import atomic_write_text, cache_dir

SHOWN = 3  # problems quoted in the one-line error; the rest are counted
PROGRESS_EVERY = 50  # files decoded between two progress reports


@dataclass
class CheckOptions:
    """How :func:`check_images` behaves inside :func:`image_check`.

    Attributes:
        skip_bad: Return unreadable files (and record them in ``skipped``) instead of raising.
        on_progress: Called as ``on_progress(decoded, to_decode, folder)`` while files are decoded.
        skipped: ``"<path> (<reason>)"`` of every file left out so far.
    """

    skip_bad: bool = False
    on_progress: Callable[[int, int, Path], None] | None = None
    skipped: list[str] = field(default_factory=list)


_OPTIONS: contextvars.ContextVar[CheckOptions | None] = contextvars.ContextVar("otxlike_image_check", default=None)


@contextlib.contextmanager
def image_check(skip_bad: bool = False, on_progress: Callable[[int, int, Path], None] | None = None):
    """Scope in which every :func:`check_images` call skips bad files (``skip_bad``) and reports
    progress; yields the :class:`CheckOptions`, whose ``skipped`` lists what was left out."""
    options = CheckOptions(skip_bad, on_progress)
    token = _OPTIONS.set(options)
    try:
        yield options
    finally:
        _OPTIONS.reset(token)


def skipping_bad() -> bool:
    """True inside ``image_check(skip_bad=True)``: a missing or bad image is left out, not refused."""
    options = _OPTIONS.get()
    return options is not None and options.skip_bad


def _cache_path(folder: Path) -> Path:
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / f"images-{key}.json"


def _problem(path: Path) -> str | None:
    """Why ``path`` is not a readable image, or None."""
    from PIL import Image

    try:
        if path.stat().st_size == 0:
            return "empty file"
        with Image.open(path) as image:
            image.load()
            if image.width == 0 or image.height == 0:
                return "zero-size image"
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        return f"{type(exc).__name__}: {exc}"
    return None


#: EXIF ``Orientation`` values that turn the stored image by 90 or 270 degrees (width and height swap).
SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


def image_size(path: Path, oriented: bool = True) -> tuple[int, int]:
    """``(width, height)`` in pixels of an image file as training reads it, from its header (no
    pixel is decoded).

    The templates load images with ``LoadImageFromFile`` at its defaults (``color_type='color'``,
    ``imdecode_backend='cv2'``): ``mmcv.imfrombytes`` -> ``cv2.imdecode(..., IMREAD_COLOR)``
    (``mmcv/image/io.py``), which turns the image by its EXIF ``Orientation`` (JPEG, PNG, WebP,
    TIFF). A phone photo stored 4000x3000 with orientation 6 is therefore 3000x4000 to the model,
    to mmdet's box checks and to COCO's ``width`` / ``height``. Pillow's header gives the stored
    size, except for TIFF, whose reader already reports the turned size
    (``PIL/TiffImagePlugin.py``), so only the other formats are swapped here.

    Args:
        path: The image file.
        oriented: False for files read without EXIF rotation (label maps: mmseg's
            ``LoadAnnotations`` decodes them with Pillow, ``flag='unchanged'``): the stored size.

    Raises:
        OSError / PIL.UnidentifiedImageError: The file cannot be opened as an image (callers run
            :func:`check_images` first).
    """
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
        if oriented and image.format != "TIFF" and \
                image.getexif().get(0x0112) in SWAPPING_ORIENTATIONS:  # 0x0112: Orientation
            return height, width
        return width, height


def problems_line(what: str, problems: list[str]) -> str:
    """One line quoting the first :data:`SHOWN` problems and counting the rest."""
    more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
    return f"{len(problems)} {what}: " + "; ".join(problems[:SHOWN]) + more


def check_images(paths: list[Path], folder: Path) -> set[Path]:
    """Decode every image in ``paths`` (files under ``folder``) once.

    Args:
        paths: The image files a split reads.
        folder: The split's folder (keys the cache).

    Returns:
        The unreadable files, left out by the caller: always empty unless inside
        ``image_check(skip_bad=True)``.

    Raises:
        OtxlikeError: If any file is missing, empty or does not decode (and bad files are not
            skipped); one line naming the first files and the reason, with a count of the rest.
    """
    options = _OPTIONS.get()
    cache_file = _cache_path(folder)
    try:
        seen = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        seen = {}
    good, problems, bad = {}, [], set()
    todo = []

    def shown(path) -> str:  # relative to the folder the message names once
        try:
            return Path(path).relative_to(folder).as_posix()
        except ValueError:
            return str(path)

    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            problems.append(f"{shown(path)} (missing)")
            bad.add(Path(path))
            continue
        stamp = [st.st_size, st.st_mtime_ns]
        if seen.get(str(path)) == stamp:
            good[str(path)] = stamp
        else:
            todo.append((path, stamp))
    report = options.on_progress if options is not None else None
    for n, (path, stamp) in enumerate(todo, 1):
        why = _problem(Path(path))
        if why is None:
            good[str(path)] = stamp
        else:
            problems.append(f"{shown(path)} ({why})")
            bad.add(Path(path))
        if report is not None and (n % PROGRESS_EVERY == 0 or n == len(todo)):
            report(n, len(todo), Path(folder))
    if good != seen:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cache_file, json.dumps(good))
        except OSError:
            pass  # a read-only cache only costs time
    if problems and options is not None and options.skip_bad:
        options.skipped.extend(f"{Path(folder) / p}" for p in problems if f"{Path(folder) / p}" not in options.skipped)
        return bad
    if problems:
        raise OtxlikeError(problems_line(f"image files under {folder} cannot be read", problems),
                           "replace or remove them (and their annotations), or train with --skip-bad-images")
    return bad
