"""Classification data formats, read into mmpretrain's ``CustomDataset`` / ``MultiLabelDataset``.

- ``imagenet``: one sub-folder of images per class (the folder name is the class).
- ``ann-list``: mmpretrain's annotation list, one ``relative/path.jpg <label index>`` per line
  (``mmpretrain/datasets/custom.py``), class names from a class file (else ``0`` .. ``K-1``).
- ``csv``: ``path,label`` rows (a header row is recognised); several labels in one cell,
  separated by ``;`` or ``|``, make the data multi-label.

Every format is handed to the dataset as a list of ``(absolute image path, label indices)``: an
annotation list (``CustomDataset``) or an OpenMMLab 2.0 JSON (``MultiLabelDataset``, the
multi-label template) in the cache (:func:`~otxlike.data.formats.common.cached_file`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from otxlike.data.formats.common import (
    IMAGE_SUFFIXES,
    SPLIT_NAMES,
    SplitData,
    cached_file,
    check_subset,
    entry_path,
    entry_root,
    find_class_file,
    list_images,
    read_class_file,
    read_subset,
    relative_id,
    split_of,
    visible,
)
from otxlike.data.images import check_images, problems_line
from otxlike.errors import OtxlikeError

MULTI_LABEL_SEPARATORS = re.compile(r"[;|]")


def _samples_data(samples: list[tuple[Path, list[int]]], classes: list[str], root: Path, dataset: dict,
                  note: str, kind: str) -> SplitData:
    """Check the images of ``samples`` and write them as the dataset's annotation file.

    Raises:
        OtxlikeError: No samples, an image that does not decode, or several labels per image
            for a single-label dataset.
    """
    bad = check_images([p for p, _ in samples], root)
    samples = [s for s in samples if s[0] not in bad]
    if not samples:
        raise OtxlikeError(f"{root}: no labelled images found (empty split)", "give a split with images")
    multi_label = dataset.get("type") == "MultiLabelDataset"
    several = [f"{p.name} has {len(labels)} labels" for p, labels in samples if len(labels) != 1]
    if several and not multi_label:
        raise OtxlikeError(f"{root}: " + problems_line("images do not have exactly one label", several),
                           "for several labels per image build the multi-label template: "
                           "otxlike build --task classification --template cls_multilabel_resnet18")
    if multi_label:
        text = json.dumps({"metainfo": {"classes": classes},
                           "data_list": [{"img_path": str(p), "gt_label": labels} for p, labels in samples]})
        ann_file = cached_file(f"{kind}-multilabel", ".json", text)
    else:
        ann_file = cached_file(kind, ".txt", "".join(f"{p} {labels[0]}\n" for p, labels in samples))
    return SplitData(
        classes=classes, images=len(samples), annotations=sum(len(labels) for _, labels in samples),
        items=[relative_id(p, root) for p, _ in samples],
        strata=[labels[0] if labels else -1 for _, labels in samples],
        dataset={"ann_file": str(ann_file), "data_prefix": "", **({} if multi_label else {"with_label": True})},
        note=note,
    )


def _keep(samples: list, entry: dict, root: Path) -> list:
    """``samples`` restricted to the split's subset file, if it has one."""
    subset = read_subset(entry)
    if subset is None:
        return samples
    ids = [relative_id(p, root) for p, _ in samples]
    check_subset(subset, ids, root)
    return [s for s, i in zip(samples, ids) if i in subset]


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in visible(folder.iterdir()) if p.is_file())


class ImageNetFormat:
    """One sub-folder of images per class."""

    name = "imagenet"
    summary = "one sub-folder of images per class"
    guess_last = True  # an annotation list or CSV beside class folders is what the user meant
    layout = "DATA/\n  train/\n    cat/  0001.jpg ...\n    dog/  ...\n  val/\n    cat/ ...  dog/ ..."

    @staticmethod
    def _classes(root: Path) -> list[str]:
        return sorted(d.name for d in visible(root.iterdir()) if d.is_dir() and _has_images(d))

    def detect(self, path: Path) -> dict[str, dict] | None:
        """Splits found at ``path``: ``<split>/<class>/`` folders, or class folders (``all``)."""
        if not path.is_dir():
            return None
        splits = {SPLIT_NAMES[d.name.lower()]: {"data_root": str(d)} for d in path.iterdir()
                  if d.is_dir() and d.name.lower() in SPLIT_NAMES and self._classes(d)}
        if splits:
            return splits
        return {"all": {"data_root": str(path)}} if len(self._classes(path)) >= 2 else None

    def check(self, entry: dict, dataset: dict) -> SplitData:
        """Read and check the split: class folders, every image decodes.

        Raises:
            OtxlikeError: If no sub-folder holds an image, or an image does not decode.
        """
        root = entry_root(entry)
        classes = self._classes(root)
        if not classes:
            raise OtxlikeError(f"data root {root} has no class folders with images",
                               "expected one sub-folder of images per class (ImageNet style)")
        samples = [(p, [label]) for label, name in enumerate(classes) for p in list_images(root / name)]
        return _samples_data(_keep(samples, entry, root), classes, root, dataset, "class folders", "imagenet")


def _class_names(entry: dict, found: list, *folders: Path) -> list[str]:
    """Class names from ``entry['classes']`` / a class file in ``folders``, else ``found`` (labels seen)."""
    if entry.get("classes"):
        return read_class_file(Path(entry["classes"]))
    path = find_class_file(*folders)
    return read_class_file(path) if path else sorted(found)


class AnnListFormat:
    """mmpretrain's annotation list: ``path label`` lines."""

    name = "ann-list"
    summary = "mmpretrain annotation lists: 'relative/path.jpg <label index>' per line"
    layout = ("DATA/\n  meta/  train.txt  val.txt  classes.txt (optional)\n"
              "  train/ ...   val/ ...   (paths in the lists are relative to DATA or to DATA/<split>/)")
    LINE = re.compile(r"^\S.*\s+-?\d+\s*$")

    def _is_list(self, path: Path) -> bool:
        try:
            with open(path, encoding="utf-8") as f:
                lines = [line for _, line in zip(range(5), f) if line.strip()]
        except (OSError, UnicodeDecodeError):
            return False
        return bool(lines) and all(self.LINE.match(line) for line in lines)

    def detect(self, path: Path) -> dict[str, dict] | None:
        """Splits from ``*.txt`` lists named after splits, in ``path`` or ``path/meta``; or the list given."""
        if path.is_file():
            return {split_of(path.stem) or "all": {"data_root": str(path.parent), "ann_file": path.name}} \
                if path.suffix == ".txt" and self._is_list(path) else None
        if not path.is_dir():
            return None
        splits = {}
        for folder in (path, path / "meta"):
            for f in visible(folder.glob("*.txt")) if folder.is_dir() else []:
                if split_of(f.stem) and f.name not in {"classes.txt", "labels.txt"} and self._is_list(f):
                    splits[split_of(f.stem)] = {"data_root": str(path), "ann_file": relative_id(f, path)}
        return splits or None

    def check(self, entry: dict, dataset: dict) -> SplitData:
        """Read and check the list: every line ``path label``, every image exists and decodes.

        Raises:
            OtxlikeError: An unreadable list, a malformed line, a label outside the class list.
        """
        root, ann_file = entry_root(entry), entry_path(entry, "ann_file", "train.txt")
        try:
            lines = [line.strip() for line in ann_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise OtxlikeError(f"annotation list {ann_file} cannot be read ({exc})") from exc
        bad = [f"line {i + 1}: {line!r}" for i, line in enumerate(lines) if not self.LINE.match(line)]
        if bad:
            raise OtxlikeError(f"{ann_file}: " + problems_line("lines are not 'path label'", bad),
                               "each line is an image path, a space, and a label index")
        pairs = [line.rsplit(None, 1) for line in lines]
        prefix = self._prefix(entry, ann_file, [p for p, _ in pairs])
        labels = sorted({int(label) for _, label in pairs})
        classes = _class_names(entry, [str(i) for i in range(max(labels) + 1)], ann_file.parent, root)
        out = [label for label in labels if not 0 <= label < len(classes)]
        if out:
            raise OtxlikeError(f"{ann_file}: labels {out} are outside the {len(classes)} classes",
                               "labels are indices 0..K-1 of the class file's lines")
        samples = [(prefix / p, [int(label)]) for p, label in pairs]
        return _samples_data(_keep(samples, entry, root), classes, root, dataset,
                             f"annotation list {relative_id(ann_file, root)}", "ann-list")

    @staticmethod
    def _prefix(entry: dict, ann_file: Path, paths: list[str]) -> Path:
        """The folder the list's paths are relative to: ``img_prefix``, else the first that has them."""
        if entry.get("img_prefix"):
            return entry_path(entry, "img_prefix", "")
        root = entry_root(entry)
        candidates = [root, root / (split_of(ann_file.stem) or ""), ann_file.parent, ann_file.parent.parent]
        for folder in candidates:
            if paths and (folder / paths[0]).is_file():
                return folder
        raise OtxlikeError(f"the images of {ann_file} are not found (e.g. {paths[0] if paths else '?'}) "
                           f"under {root}", "set img_prefix for this split in data.yaml")


class CsvFormat:
    """``path,label`` rows; ``a;b`` in the label cell for several labels."""

    name = "csv"
    summary = "CSV 'path,label' rows; 'a;b' labels make it multi-label"
    layout = ("DATA/\n  train.csv  val.csv   (path,label; a header row is optional)\n"
              "  images/ ...             (paths relative to the CSV's folder or images/)")

    def detect(self, path: Path) -> dict[str, dict] | None:
        """Splits from ``*.csv`` files named after splits in ``path``; or the CSV given."""
        if path.is_file():
            return {split_of(path.stem) or "all": {"data_root": str(path.parent), "ann_file": path.name}} \
                if path.suffix.lower() == ".csv" else None
        if not path.is_dir():
            return None
        files = visible(path.glob("*.csv"))
        splits = {split_of(f.stem): {"data_root": str(path), "ann_file": f.name} for f in files if split_of(f.stem)}
        if not splits and len(files) == 1:
            splits = {"all": {"data_root": str(path), "ann_file": files[0].name}}
        return splits or None

    def check(self, entry: dict, dataset: dict) -> SplitData:
        """Read and check the CSV: two columns, a label on every row, every image decodes.

        Raises:
            OtxlikeError: An unreadable CSV, a row without a label, an unknown class, a missing image.
        """
        root, ann_file = entry_root(entry), entry_path(entry, "ann_file", "train.csv")
        try:
            rows = [r for r in csv.reader(io.StringIO(ann_file.read_text(encoding="utf-8"))) if any(c.strip() for c in r)]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise OtxlikeError(f"CSV file {ann_file} cannot be read ({exc})") from exc
        if rows and rows[0][0].strip().lower() in {"path", "image", "filename", "file", "img", "image_path", "img_path"}:
            rows = rows[1:]
        bad = [f"row {i + 1}: {','.join(r)!r}" for i, r in enumerate(rows) if len(r) < 2 or not r[1].strip()]
        if bad:
            raise OtxlikeError(f"{ann_file}: " + problems_line("rows have no label", bad),
                               "each row is 'path,label' (several labels: 'path,a;b')")
        cells = [(r[0].strip(), [x.strip() for x in MULTI_LABEL_SEPARATORS.split(r[1]) if x.strip()]) for r in rows]
        found = sorted({label for _, labels in cells for label in labels})
        classes = _class_names(entry, found, ann_file.parent, root)
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise OtxlikeError(f"{ann_file}: labels {unknown[:5]} are not in the class file",
                               "add them to the class file or fix the CSV")
        prefix = entry_path(entry, "img_prefix", "") if entry.get("img_prefix") else next(
            (f for f in (ann_file.parent, ann_file.parent / "images", root) if cells and (f / cells[0][0]).is_file()),
            ann_file.parent)
        index = {c: i for i, c in enumerate(classes)}
        samples = [(prefix / p, sorted({index[label] for label in labels})) for p, labels in cells]
        return _samples_data(_keep(samples, entry, root), classes, root, dataset,
                             f"CSV {relative_id(ann_file, root)}", "csv")


FORMATS = (ImageNetFormat(), AnnListFormat(), CsvFormat())
