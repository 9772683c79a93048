"""Semantic-segmentation data formats, read by mmseg's ``BaseSegDataset``.

- ``mmseg``: ``<split>/images/*`` and ``<split>/labels/*.png`` label maps with the same stems,
  plus ``classes.txt`` (one name per line; value = line index; 255 = ignore) in the split folder
  or its parent.
- ``cityscapes``: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` and
  ``gtFine/<split>/<city>/*_gtFine_labelTrainIds.png`` (the 19 train ids, made by cityscapesScripts'
  ``createTrainIdLabelImgs``), classes of mmseg's ``CityscapesDataset``.
- ``ade20k``: ``images/<split>/*.jpg`` and ``annotations/<split>/*.png`` with 0 = "other"
  (ignored: mmseg's ``reduce_zero_label``) and value v = class v - 1; classes from a class file,
  else mmseg's ``ADE20KDataset`` (150).
- ``voc-seg``: Pascal VOC ``JPEGImages/``, ``SegmentationClass/*.png`` palette maps and
  ``ImageSets/Segmentation/<split>.txt``; classes of mmseg's ``PascalVOCDataset`` (21) unless a
  class file says otherwise; 255 (the object borders) is ignored.
- ``coco-seg``: a COCO file with polygon / RLE masks (any layout ``coco`` reads), rasterised once
  into label maps in the cache: 0 = background, category k (in id order) = k + 1, crowd regions
  255 (ignored); later annotations of an image paint over earlier ones.

Each split is handed to the dataset as its image and label folders, file suffixes and a list of
stems in the cache (the dataset's ``ann_file``), so ``--val-split`` subsets need no copies.
"""

from __future__ import annotations

from pathlib import Path

from otxlike.data.formats.common import (
    IGNORE_INDEX,
    SplitData,
    cached_file,
    check_subset,
    entry_path,
    entry_root,
    find_class_file,
    paired_split_folders,
    read_class_file,
    read_subset,
    split_of,
    visible,
)
from otxlike.data.images import check_images, image_size, problems_line
from otxlike.errors import OtxlikeError


def seg_split(img_dir: Path, ann_dir: Path, img_suffix: str, seg_suffix: str, classes: list[str],
              reduce_zero_label: bool, entry: dict, recursive: bool, note: str) -> SplitData:
    """Check a split of images and label maps paired by stem, and hand it to ``BaseSegDataset``.

    Args:
        img_dir: Folder of the images (``<stem><img_suffix>``).
        ann_dir: Folder of the label maps (``<stem><seg_suffix>``).
        classes: Class names; label value v is class v (v - 1 with ``reduce_zero_label``).
        reduce_zero_label: Value 0 is "unlabelled" and ignored (mmseg's ADE20K convention).
        entry: The split's data.yaml mapping (``subset``, or ``split_file`` of stems).
        recursive: Stems may hold sub-folders (Cityscapes' ``<city>/``).
        note: What was read, for the user.

    Raises:
        OtxlikeError: Missing folders, an empty split, images without a label map (or the
            reverse), undecodable files, label maps whose size differs from their image, or label
            values outside the class list (other than 255).
    """
    import numpy as np
    from PIL import Image

    for folder in (img_dir, ann_dir):
        if not folder.is_dir():
            raise OtxlikeError(f"segmentation data has no folder {folder}",
                               "give the images and label-map folders (see 'otxlike find --data-formats')")
    pattern = "**/*" if recursive else "*"
    def stem(path: Path, folder: Path, suffix: str) -> str:  # the id: relative path less the suffix ('' too)
        rel = path.relative_to(folder).as_posix()
        return rel[: len(rel) - len(suffix)]

    images = {stem(p, img_dir, img_suffix): p for p in visible(img_dir.glob(pattern + img_suffix), img_dir)
              if p.is_file()}
    labels = {stem(p, ann_dir, seg_suffix): p for p in visible(ann_dir.glob(pattern + seg_suffix), ann_dir)
              if p.is_file()}
    if entry.get("split_file"):
        split_file = entry_path(entry, "split_file", "")
        try:
            wanted = [line.split()[0] for line in split_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as exc:
            raise OtxlikeError(f"split list {split_file} cannot be read ({exc.strerror})") from exc
        lacking = [s for s in wanted if s not in images or s not in labels]
        if lacking:
            raise OtxlikeError(f"{len(lacking)} ids of {split_file} lack an image or a label map, e.g. {lacking[0]}",
                               f"expected {img_dir.name}/<id>{img_suffix} and {ann_dir.name}/<id>{seg_suffix}")
        stems = wanted
    else:
        if not images:
            raise OtxlikeError(f"{img_dir} has no *{img_suffix} images (empty split)")
        unmatched = sorted(set(images) ^ set(labels))
        if unmatched:
            raise OtxlikeError(
                f"{len(unmatched)} images and label maps do not match by name, e.g. '{unmatched[0]}'",
                f"every image in {img_dir} needs a label map of the same name in {ann_dir}")
        stems = sorted(images)
    subset = read_subset(entry)
    if subset is not None:
        check_subset(subset, stems, img_dir)
        stems = [s for s in stems if s in subset]
    bad = check_images([images[s] for s in stems] + [labels[s] for s in stems], img_dir)
    stems = [s for s in stems if images[s] not in bad and labels[s] not in bad]  # --skip-bad-images
    if not stems:
        raise OtxlikeError(f"{img_dir}: no readable image with a readable label map is left")
    sizes = [f"{labels[s].name} is {image_size(labels[s], oriented=False)} but its image is {image_size(images[s])}"
             for s in stems if image_size(labels[s], oriented=False) != image_size(images[s])]
    if sizes:
        raise OtxlikeError(problems_line("label maps differ in size from their images", sizes),
                           "each label map must have its image's width and height")
    top = len(classes) if reduce_zero_label else len(classes) - 1
    for s in stems:
        values = set(np.unique(np.asarray(Image.open(labels[s]))).tolist())
        out = sorted(v for v in values if not 0 <= v <= top and v != IGNORE_INDEX)
        if out:
            raise OtxlikeError(f"label map {labels[s]} has values {out} outside the {len(classes)} classes "
                               f"(0..{top}, 255 = ignore)", "fix the label maps or the class list")
    return SplitData(
        classes=classes, images=len(stems), annotations=len(stems), items=stems,
        dataset={"ann_file": str(cached_file("seg", ".txt", "".join(f"{s}\n" for s in stems))),
                 "data_prefix": {"img_path": str(img_dir), "seg_map_path": str(ann_dir)},
                 "img_suffix": img_suffix, "seg_map_suffix": seg_suffix, "reduce_zero_label": reduce_zero_label},
        note=note,
    )


def _library_classes(dataset_class: str) -> list[str]:
    """``METAINFO['classes']`` of an mmseg dataset class (``mmseg/datasets/<name>.py``)."""
    import mmseg.datasets

    return list(getattr(mmseg.datasets, dataset_class).METAINFO["classes"])


def _classes(entry: dict, folders: tuple[Path, ...], default: str | None) -> list[str]:
    """``entry['classes']``, else a class file in ``folders``, else the library's class list ``default``.

    Raises:
        OtxlikeError: If none is found.
    """
    if entry.get("classes"):
        return read_class_file(Path(entry["classes"]))
    path = find_class_file(*folders)
    if path:
        return read_class_file(path)
    if default is None:
        raise OtxlikeError(f"no classes.txt in {' or '.join(str(f) for f in folders)}",
                           "write the class names there, one per line (line index = label value)")
    return _library_classes(default)


class MMSegFormat:
    """Images and PNG label maps with the same file names, and classes.txt."""

    name = "mmseg"
    summary = "images/ + labels/ PNG label maps of the same names + classes.txt"
    layout = "DATA/\n  classes.txt\n  train/  images/ 0001.png ...  labels/ 0001.png ...\n  val/    images/ ...  labels/ ..."

    def detect(self, path: Path) -> dict[str, dict] | None:
        """Splits: ``<split>/images`` + ``<split>/labels``, or ``images`` + ``labels`` (``all``)."""
        if not path.is_dir():
            return None
        def pair(d: Path) -> bool:
            return (d / "images").is_dir() and (d / "labels").is_dir() and bool(visible((d / "labels").glob("*.png")))
        splits = {split_of(d.name): {"data_root": str(d)} for d in sorted(path.iterdir())
                  if d.is_dir() and split_of(d.name) and pair(d)}
        return splits or ({"all": {"data_root": str(path)}} if pair(path) else None)

    def check(self, entry: dict, dataset: dict) -> SplitData:
        """Read and check the split (:func:`seg_split`).

        Raises:
            OtxlikeError: No classes.txt, and everything :func:`seg_split` checks.
        """
        root = entry_root(entry)
        prefix = dataset.get("data_prefix") or {}
        return seg_split(entry_path(entry, "img_prefix", prefix.get("img_path", "images")),
                         entry_path(entry, "label_prefix", prefix.get("seg_map_path", "labels")),
                         entry.get("img_suffix") or dataset.get("img_suffix", ".png"),
                         entry.get("seg_map_suffix") or dataset.get("seg_map_suffix", ".png"),
                         _classes(entry, (root, root.parent), None), False, entry, False, "images + label maps")


class CityscapesFormat:
    """Cityscapes ``leftImg8bit`` / ``gtFine`` with train ids."""

    name = "cityscapes"
    summary = "Cityscapes: leftImg8bit/<split>/<city>/ + gtFine/<split>/<city>/*_gtFine_labelTrainIds.png"
    layout = ("DATA/\n  leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png ...\n"
              "  gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png ...\n  (val/ the same)")

    def detect(self, path: Path) -> dict[str, dict] | None:
        """Splits from ``leftImg8bit/<split>/`` with ``gtFine/<split>/``."""
        return paired_split_folders(path, "leftImg8bit", "gtFine")

    def check(self, entry: dict, dataset: dict) -> SplitData:
        """Read and check the split (:func:`seg_split`): train-id maps must exist.

        Raises:
            OtxlikeError: Only ``*_labelIds.png`` present (the train ids were not made), and
                everything :func:`seg_split` checks.
        """
        root = entry_root(entry)
        ann_dir = entry_path(entry, "label_prefix", "gtFine/train")
        if ann_dir.is_dir() and not any(ann_dir.glob("**/*_gtFine_labelTrainIds.png")) \
                and any(ann_dir.glob("**/*_gtFine_labelIds.png")):
            raise OtxlikeError(f"{ann_dir} has *_gtFine_labelIds.png but no *_gtFine_labelTrainIds.png",
                               "make the train-id maps with cityscapesScripts' createTrainIdLabelImgs "
                               "(or mmseg's tools/dataset_converters/cityscapes.py)")
        return seg_split(entry_path(entry, "img_prefix", "leftImg8bit/train"), ann_dir, "_leftImg8bit.png",
                         "_gtFine_labelTrainIds.png", _classes(entry, (root,), "CityscapesDataset"), False,
                         entry, True, "Cityscapes train ids")


class Ade20kFormat:
    """ADE20K-style ``images/`` + ``annotations/`` with 0 = unlabelled."""

    name = "ade20k"
    summary = "ADE20K style: images/<split>/*.jpg + annotations/<split>/*.png, 0 = unlabelled"
    layout = ("DATA/\n  classes.txt  (optional: else ADE20K's 150 classes; value v = class v-1)\n"
              "  images/training/ ADE_train_00000001.jpg ...       images/validation/ ...\n"
              "  annotations/training/ ADE_train_00000001.png ...  annotations/validation/ ...")

    def detect(self, path: Path) -> dict[str, dict] | None:
        """Splits from ``images/<split>/`` with ``annotations/<split>/``."""
        return paired_split_folders(path, "images", "annotations")

    def check(self, entry: dict, dataset: dict) -> SplitData:
        """Read and check the split (:func:`seg_split`, ``reduce_zero_label``).

        Raises:
            OtxlikeError: See :func:`seg_split`.
        """
        root = entry_root(entry)
        img_dir = entry_path(entry, "img_prefix", "images/training")
        suffix = entry.get("img_suffix") or next((p.suffix for p in visible(img_dir.glob("*.*"))[:1]), ".jpg")
        return seg_split(img_dir, entry_path(entry, "label_prefix", "annotations/training"), suffix, ".png",
                         _classes(entry, (root,), "ADE20KDataset"), True, entry, False, "ADE20K style (0 ignored)")


class VocSegFormat:
    """Pascal VOC ``SegmentationClass`` palette maps."""

    name = "voc-seg"
    summary = "Pascal VOC: JPEGImages/ + SegmentationClass/*.png + ImageSets/Segmentation/<split>.txt"
    layout = ("DATA/ (e.g. VOCdevkit/VOC2012)\n  JPEGImages/ 2007_000032.jpg ...\n"
              "  SegmentationClass/ 2007_000032.png ...  (palette PNG: index = class, 255 = border)\n"
              "  ImageSets/Segmentation/ train.txt val.txt")

    @staticmethod
    def _root(path: Path) -> Path | None:
        if (path / "SegmentationClass").is_dir() and (path / "JPEGImages").is_dir():
            return path
        inner = [p for p in sorted(path.glob("*/")) + sorted(path.glob("*/*/")) if (p / "SegmentationClass").is_dir()]
        return inner[0] if len(inner) == 1 else None

    def detect(self, path: Path) -> dict[str, dict] | None:
        """Splits from ``ImageSets/Segmentation/{train,val,test}.txt`` (else every labelled image)."""
        root = self._root(path) if path.is_dir() else None
        if root is None:
            return None
        lists = root / "ImageSets" / "Segmentation"
        return {s: {"data_root": str(root), "split_file": f"ImageSets/Segmentation/{s}.txt"}
                for s in ("train", "val", "test") if (lists / f"{s}.txt").is_file()} or {"all": {"data_root": str(root)}}

    def check(self, entry: dict, dataset: dict) -> SplitData:
        """Read and check the split (:func:`seg_split`).

        Raises:
            OtxlikeError: See :func:`seg_split`.
        """
        root = entry_root(entry)
        images = root / "JPEGImages"
        if not entry.get("split_file"):  # only the labelled images: JPEGImages holds the detection set too
            labelled = {p.stem for p in visible((root / "SegmentationClass").glob("*.png"))}
            ids = sorted(labelled)
            entry = {**entry, "split_file": str(cached_file("voc-ids", ".txt", "".join(f"{i}\n" for i in ids)))}
        return seg_split(images, root / "SegmentationClass", ".jpg", ".png",
                         _classes(entry, (root,), "PascalVOCDataset"), False, entry, False, "Pascal VOC palette maps")


class CocoSegFormat:
    """COCO polygons / RLE rasterised to label maps."""

    name = "coco-seg"
    summary = "COCO JSON with polygon / RLE masks, rasterised to label maps (0 = background)"
    layout = "as coco (detection): annotations/instances_<split>.json + images, or <split>/annotations.json + images/"

    def detect(self, path: Path) -> dict[str, dict] | None:
        """The splits :class:`~otxlike.data.formats.detection.CocoFormat` finds."""
        from otxlike.data.formats.detection import CocoFormat

        return CocoFormat().detect(path)

    def check(self, entry: dict, dataset: dict) -> SplitData:
        """Rasterise the split's masks (once: cached by the JSON's content) and check the result
        (:func:`seg_split`).

        Raises:
            OtxlikeError: No categories / images, annotations of unknown images or categories or
                without ``segmentation``, missing images, and everything :func:`seg_split` checks.
        """
        import hashlib
        import os
        import shutil
        import tempfile

        import numpy as np
        from PIL import Image
        from pycocotools import mask as mask_utils

        from otxlike.data.formats.detection import _read_json
        from otxlike.fileio import cache_dir

        ann_path = entry_path(entry, "ann_file", "annotations.json")
        img_dir = entry_path(entry, "img_prefix", "images")
        coco = _read_json(ann_path)
        if not isinstance(coco, dict) or not coco.get("categories") or not coco.get("images"):
            raise OtxlikeError(f"COCO file {ann_path} needs 'categories' and 'images'")
        cats = sorted(coco["categories"], key=lambda c: c["id"])
        value = {c["id"]: k + 1 for k, c in enumerate(cats)}
        images = {img["id"]: img for img in coco["images"]}
        anns = coco.get("annotations") or []
        bad = [f"annotation {a.get('id')}" + (" has no segmentation" if a.get("image_id") in images
                                             else " refers to an unknown image")
               for a in anns if not a.get("segmentation") or a.get("image_id") not in images]
        bad += [f"annotation {a.get('id')} has unknown category {a.get('category_id')}"
                for a in anns if a.get("category_id") not in value]
        if bad:
            raise OtxlikeError(f"{ann_path}: " + problems_line("annotations cannot be rasterised", bad),
                               "every annotation needs a known image, category and a polygon or RLE 'segmentation'")
        bad = check_images([img_dir / str(img["file_name"]) for img in images.values()], img_dir)
        images = {k: img for k, img in images.items() if img_dir / str(img["file_name"]) not in bad}
        missing = [str(img["file_name"]) for img in images.values() if not (img_dir / str(img["file_name"])).is_file()]
        if missing:
            raise OtxlikeError(f"{len(missing)} of {len(images)} images named in {ann_path} are missing under {img_dir}, "
                               f"e.g. {missing[0]}", "fix the file names or the image folder")
        key = hashlib.sha256(ann_path.read_bytes() + str(img_dir).encode() + str(sorted(map(str, bad))).encode()).hexdigest()[:20]
        maps = cache_dir() / "data" / f"coco-seg-{key}"
        if not maps.is_dir():
            maps.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".coco-seg-", dir=maps.parent))
            try:
                by_image: dict = {}
                for a in anns:
                    by_image.setdefault(a["image_id"], []).append(a)
                for img in images.values():
                    width, height = image_size(img_dir / str(img["file_name"]))
                    label = np.zeros((height, width), np.uint8)
                    for a in by_image.get(img["id"], []):
                        seg = a["segmentation"]
                        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width)) if isinstance(seg, list) \
                            else (mask_utils.frPyObjects(seg, height, width) if isinstance(seg.get("counts"), list) else seg)
                        label[mask_utils.decode(rle).astype(bool)] = IGNORE_INDEX if a.get("iscrowd") else value[a["category_id"]]
                    out = staging / f"{img['file_name']}.png"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(label).save(out)
                os.replace(staging, maps)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
                if not maps.is_dir():
                    raise OtxlikeError(f"cannot write the label maps to {maps}", "set OTXLIKE_CACHE_DIR to a writable folder")
                # else another command made them meanwhile
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        names = [str(img["file_name"]) for img in images.values()]
        listed = {**entry, "split_file": str(cached_file("coco-seg-ids", ".txt", "".join(f"{n}\n" for n in names)))}
        return seg_split(img_dir, maps, "", ".png", ["background", *(str(c["name"]) for c in cats)], False,
                         listed, True, f"COCO {ann_path.name} masks rasterised")


FORMATS = (MMSegFormat(), CityscapesFormat(), Ade20kFormat(), VocSegFormat(), CocoSegFormat())
