"""Image files checked before training: every file a split will read must decode.

A corrupt, truncated or empty image otherwise surfaces inside the first training iteration as a
DataLoader worker traceback. :func:`check_images` opens each file with Pillow and decodes it fully
(``Image.load()``: ``verify()`` alone misses truncated pixel data of some formats); files seen
before with the same size and modification time are not decoded again (a cache under
:func:`otxlike.fileio.cache_dir`), so the check costs seconds only the first time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from otxlike.errors import OtxlikeError
from otxlike.fileio import atomic_write_text, cache_dir

SHOWN = 3  # problems quoted in the one-line error; the rest are counted


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


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, from its header."""
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def problems_line(what: str, problems: list[str]) -> str:
    """One line quoting the first :data:`SHOWN` problems and counting the rest."""
    more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
    return f"{len(problems)} {what}: " + "; ".join(problems[:SHOWN]) + more


def check_images(paths: list[Path], folder: Path) -> None:
    """Decode every image in ``paths`` (files under ``folder``) once.

    Args:
        paths: The image files a split reads.
        folder: The split's folder (keys the cache).

    Raises:
        OtxlikeError: If any file is missing, empty or does not decode; one line naming the first
            files and the reason, with a count of the rest.
    """
    cache_file = _cache_path(folder)
    try:
        seen = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        seen = {}
    good, problems = {}, []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            problems.append(f"{path} (missing)")
            continue
        stamp = [st.st_size, st.st_mtime_ns]
        if seen.get(str(path)) == stamp:
            good[str(path)] = stamp
            continue
        why = _problem(Path(path))
        if why is None:
            good[str(path)] = stamp
        else:
            problems.append(f"{path} ({why})")
    if good != seen:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cache_file, json.dumps(good))
        except OSError:
            pass  # a read-only cache only costs time
    if problems:
        raise OtxlikeError(problems_line("image files cannot be read", problems),
                           "replace or remove them (and their annotations)")
