"""Dataset formats of data.yaml: detected from a folder, checked up front, handed to the task
library's dataset class.

A format is an object with:

- ``name``, ``summary`` and ``layout`` (a tree of its files, for ``otxlike find --data-formats``
  and docs/data.md);
- ``detect(path) -> {split: entry} | None``: the splits it recognises at a folder (or a file
  such as a COCO JSON or a CSV), each as the mapping data.yaml stores for the split
  (``data_root`` plus the format's own keys: ``ann_file``, ``img_prefix``, ``split_file`` ...).
  A folder with no split in it gives ``{"all": entry}``;
- ``check(entry, dataset) -> SplitData``: reads and checks a split before anything is built (so bad
  data fails in a second, not 20 minutes into an epoch), and says what the dataset config gets.

Which formats a task reads is :attr:`otxlike.tasks.TaskSpec.data_formats` (the first is the
template's). Datumaro, which the reference product used, is not a dependency: it pins
``opencv-python-headless<5`` beside mmcv's ``opencv-python`` 5 (two packages owning ``cv2``) and
downgrades Pillow; the task libraries' dataset classes read everything here, with small
readers for VOC XML, YOLO text and CSV (docs/data.md).
"""

from __future__ import annotations

from pathlib import Path

from otxlike.data.formats import classification, detection, segmentation
from otxlike.data.formats.common import IGNORE_INDEX, IMAGE_SUFFIXES, SplitData, apply
from otxlike.errors import OtxlikeError

__all__ = ["FORMATS", "IGNORE_INDEX", "IMAGE_SUFFIXES", "SplitData", "apply", "detect", "get_format"]

FORMATS = {f.name: f for f in (*classification.FORMATS, *detection.FORMATS, *segmentation.FORMATS)}
"""Formats by the name used in data.yaml and ``--data-format``."""


def get_format(name: str, allowed: tuple[str, ...] | None = None):
    """The format called ``name``.

    Args:
        name: A key of :data:`FORMATS`.
        allowed: The formats the workspace's task reads; None for any.

    Raises:
        OtxlikeError: If there is none, or the task does not read it.
    """
    known = allowed or tuple(FORMATS)
    if name not in FORMATS or name not in known:
        raise OtxlikeError(f"unknown data format '{name}'" + (" for this task" if name in FORMATS else ""),
                           f"known formats: {', '.join(known)} (otxlike find --data-formats)")
    return FORMATS[name]


def detect(path: str | Path, allowed: tuple[str, ...], forced: str | None = None):
    """The format of the data at ``path`` and the splits found there.

    Formats are tried in ``allowed`` order (the task's default first), those that recognise a
    layout by folder names alone (``guess_last``: class folders) after those that need an
    annotation file; the first that recognises the layout wins.

    Args:
        path: A dataset folder, or a file such as a COCO JSON, a CSV or an annotation list.
        allowed: The formats the task reads.
        forced: Try only this format (``--data-format``).

    Returns:
        ``(format, {split: entry})`` with split ``train``, ``val``, ``test`` or ``all`` (no split found).

    Raises:
        OtxlikeError: If ``path`` does not exist or no format recognises it.
    """
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise OtxlikeError(f"data root {path} does not exist", "give an existing folder or annotation file")
    candidates = [get_format(forced, allowed)] if forced else sorted(
        (FORMATS[n] for n in allowed), key=lambda f: getattr(f, "guess_last", False))
    for fmt in candidates:
        splits = fmt.detect(path)
        if splits:
            return fmt, splits
    if forced:
        layout = " / ".join(line.strip() for line in candidates[0].layout.splitlines())
        raise OtxlikeError(f"{path} does not look like {forced} data", f"expected: {layout}")
    raise OtxlikeError(f"no known data format found at {path}",
                       f"this task reads: {', '.join(allowed)}; see 'otxlike find --data-formats', "
                       "or force one with --data-format NAME")
