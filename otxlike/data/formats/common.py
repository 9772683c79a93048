"""What every data format shares: the checked summary of a split, file listing, class files,
subsets and the cache of converted annotation files.

A format reads the user's files where they are and never moves or copies an image. Where the
task library's dataset class cannot read the format directly (VOC XML and YOLO text for mmdet's
``CocoDataset``, CSV for mmpretrain's ``CustomDataset``, a subset written by ``--val-split``), the
annotations alone are converted to the library's own format and cached under
``<cache_dir>/data/`` by content hash (:func:`cached_file`): converting is milliseconds per
thousand images, and a cleared cache is rebuilt by the next command.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from otxlike.errors import OtxlikeError
from otxlike.fileio import atomic_write_text, cache_dir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IGNORE_INDEX = 255  # mmseg's default ignore_index of label maps
CLASS_FILES = ("classes.txt", "labels.txt", "obj.names", "classes.names")
"""Files a class list is read from, one name per line (line index = label), first found wins."""


SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test"}
"""Folder / file stems that name a split, and the split they name."""

def split_of(stem: str) -> str | None:
    """The split a file or folder stem names (``instances_train2017`` -> ``train``), or None."""
    for word in re.split(r"[^a-z]+", stem.lower()):
        if word in SPLIT_NAMES:
            return SPLIT_NAMES[word]
    return None


def paired_split_folders(path: Path, images: str, labels: str) -> dict[str, dict] | None:
    """Splits of a layout with ``<images>/<split>/`` beside ``<labels>/<split>/`` (YOLO,
    Cityscapes, ADE20K): ``{split: {data_root, img_prefix, label_prefix}}``, or None."""
    if not path.is_dir() or not (path / images).is_dir() or not (path / labels).is_dir():
        return None
    return {split_of(d.name): {"data_root": str(path), "img_prefix": f"{images}/{d.name}",
                               "label_prefix": f"{labels}/{d.name}"}
            for d in visible((path / images).iterdir())
            if d.is_dir() and split_of(d.name) and (path / labels / d.name).is_dir()} or None


@dataclass
class SplitData:
    """One split as a format read and checked it.

    Attributes:
        classes: Class names in label order.
        images: Number of images.
        annotations: Number of annotations (labels of classification, objects of detection,
            label maps of segmentation).
        items: One id per image, the path relative to the split's ``data_root`` (what a subset
            file lists and ``--val-split`` samples).
        strata: The label of each item where one exists (classification), for a stratified split.
        dataset: The fields the task library's dataset config gets (``ann_file``,
            ``data_prefix``, ...): :func:`apply`.
        eval_ann_file: The COCO file the evaluator compares with (detection), or None.
        note: What was found, for the user (``standard layout``, ``converted from VOC XML``).
    """

    classes: list[str]
    images: int
    annotations: int
    items: list[str]
    strata: list[int] | None = None
    dataset: dict = field(default_factory=dict)
    eval_ann_file: str | None = None
    note: str = ""


def apply(dataset: dict, evaluator: dict | None, data: SplitData) -> None:
    """Point an mmengine dataset config (and the evaluator's ``ann_file``) at a checked split.

    ``data_root`` is emptied: every path in ``data.dataset`` is absolute. (``ConfigDict.setdefault``
    returns a converted copy, so the metainfo dict is replaced whole.)
    """
    dataset["data_root"] = ""
    for key, value in data.dataset.items():
        dataset[key] = value
    dataset["metainfo"] = {**(dataset.get("metainfo") or {}), "classes": tuple(data.classes)}
    if evaluator is not None and "ann_file" in evaluator:
        evaluator["ann_file"] = data.eval_ann_file or ""


def entry_root(entry: dict) -> Path:
    """The split's ``data_root`` (absolute, as :meth:`Workspace.data` resolves it)."""
    return Path(entry["data_root"])


def entry_path(entry: dict, key: str, default: str) -> Path:
    """``entry[key]`` (or ``default``) under the split's ``data_root``; absolute values stay."""
    value = entry.get(key) or default
    return entry_root(entry) / value


def is_hidden(path: Path, root: Path | None = None) -> bool:
    """True if ``path``'s name, or any folder between ``root`` and it, starts with ``"."``.

    Such names are not data: macOS writes ``._<name>`` AppleDouble files (resource forks, not
    images) beside every file copied to a non-Apple disk, and ``.DS_Store``; ``.git``,
    ``.ipynb_checkpoints`` and editors' ``.~`` files are hidden folders and files too. Every
    listing of a data folder skips them.
    """
    path = Path(path)
    parts = path.relative_to(root).parts if root is not None else (path.name,)
    return any(part.startswith(".") for part in parts)


def visible(paths, root: Path | None = None) -> list[Path]:
    """``paths`` without the hidden ones (:func:`is_hidden`), sorted."""
    return sorted(p for p in paths if not is_hidden(p, root))


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (sub-folders too if ``recursive``), sorted; [] if no folder.

    Hidden files and folders (names starting with ``.``, :func:`is_hidden`) are skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(p, folder)
                  and p.is_file())


def find_class_file(*folders: Path) -> Path | None:
    """The first of :data:`CLASS_FILES` in ``folders``, or None."""
    for folder in folders:
        for name in CLASS_FILES:
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    return None


def read_class_file(path: Path) -> list[str]:
    """Class names of a class file, one per non-empty line.

    Raises:
        OtxlikeError: If it cannot be read, is empty, or names a class twice.
    """
    try:
        names = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise OtxlikeError(f"class file {path} cannot be read ({exc})") from exc
    if not names:
        raise OtxlikeError(f"class file {path} is empty", "write one class name per line")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise OtxlikeError(f"class file {path} names {twice} more than once", "each class once, one per line")
    return names


def read_subset(entry: dict) -> set[str] | None:
    """The item ids listed by the split's ``subset`` file (written by ``--val-split``), or None.

    Raises:
        OtxlikeError: If the file is missing or empty.
    """
    if not entry.get("subset"):
        return None
    path = Path(entry["subset"])
    try:
        items = {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    except OSError as exc:
        raise OtxlikeError(f"subset file {path} (from data.yaml) cannot be read ({exc.strerror})",
                           "rerun 'otxlike build --data-root DIR --val-split F', or remove 'subset' from data.yaml") from exc
    if not items:
        raise OtxlikeError(f"subset file {path} is empty", "rerun 'otxlike build --data-root DIR --val-split F'")
    return items


def check_subset(subset: set[str] | None, items: list[str], where: Path) -> None:
    """Refuse a subset that lists items the split does not have.

    Raises:
        OtxlikeError: Naming the first unknown item.
    """
    if subset is None:
        return
    unknown = sorted(subset - set(items))
    if unknown:
        raise OtxlikeError(f"{len(unknown)} items of the subset file are not in {where}, e.g. {unknown[0]}",
                           "the data changed since the split was made: rerun 'otxlike build --data-root DIR --val-split F'")


def cached_file(kind: str, suffix: str, text: str) -> Path:
    """``text`` written once to ``<cache_dir>/data/<kind>-<sha256>.<suffix>``; its path.

    The name is the content's hash, so the same conversion is written once and a changed source
    gets a new file; files are written atomically, so two commands never see half a file.

    Raises:
        OtxlikeError: If the cache folder cannot be written.
    """
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]
    path = cache_dir() / "data" / f"{kind}-{digest}{suffix}"
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
        except OSError as exc:
            raise OtxlikeError(f"cannot write the converted annotations to {path} ({exc.strerror})",
                               "set OTXLIKE_CACHE_DIR to a writable folder") from exc
    return path


def relative_id(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with forward slashes (an item id), or the absolute path."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()
