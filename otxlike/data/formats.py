"""Dataset formats of data.yaml: up-front checks and how each fills in an mmengine dataloader.

Each format checks one split folder before anything is built (so bad data fails in a second, not
20 minutes into an epoch) and returns its class names; then it points the dataloader's dataset
(and the evaluator, for COCO) at the folder.

- ``imagenet``: one sub-folder of images per class (mmpretrain ``CustomDataset``).
- ``coco``: ``<split>/annotations.json`` (COCO: boxes, polygon or RLE masks) and the images it
  names under the dataset's ``data_prefix['img']`` (mmdet ``CocoDataset``, ``CocoMetric``).
- ``mmseg``: ``<split>/images/*`` and ``<split>/labels/*.png`` label maps with the same stems,
  plus ``classes.txt`` (one name per line; value = line index; 255 = ignore) in the split folder
  or its parent (mmseg ``BaseSegDataset``, ``IoUMetric``).
"""

from __future__ import annotations

import json
from pathlib import Path

from otxlike.data.images import check_images, image_size, problems_line
from otxlike.errors import OtxlikeError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff"}
IGNORE_INDEX = 255  # mmseg's default ignore_index of label maps


def class_folders(root: Path) -> list[str]:
    """Sorted names of the sub-folders of ``root`` that hold at least one image (the classes)."""
    return sorted(
        d.name for d in Path(root).iterdir()
        if d.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir())
    )


def set_dataset_root(dataset: dict, root: Path, classes: list[str]) -> None:
    """Point an mmengine dataset config at ``root`` with ``metainfo['classes']`` set.

    (``ConfigDict.setdefault`` returns a converted copy, so the metainfo dict is replaced whole.)
    """
    dataset["data_root"] = str(root)
    dataset["metainfo"] = {**(dataset.get("metainfo") or {}), "classes": tuple(classes)}


class ImageNetFormat:
    """One sub-folder of images per class."""

    name = "imagenet"

    def check(self, root: Path, dataset: dict) -> list[str]:
        """The class names of the split at ``root``.

        Raises:
            OtxlikeError: If no sub-folder holds an image.
        """
        found = class_folders(root)
        if not found:
            raise OtxlikeError(
                f"data root {root} has no class folders with images",
                "expected one sub-folder of images per class (ImageNet style)",
            )
        check_images([f for c in found for f in sorted((Path(root) / c).iterdir())
                      if f.suffix.lower() in IMAGE_SUFFIXES], Path(root))
        return found

    def configure(self, dataset: dict, evaluator: dict | None, root: Path, classes: list[str]) -> None:
        set_dataset_root(dataset, root, classes)


def _is_box(box) -> bool:
    """A COCO ``[x, y, width, height]`` with positive width and height."""
    return (isinstance(box, (list, tuple)) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)
            and box[2] > 0 and box[3] > 0)


def _loads_masks(dataset: dict) -> bool:
    """True if the dataset's pipeline loads instance masks (``LoadAnnotations(with_mask=True)``)."""
    return any(isinstance(t, dict) and t.get("type") == "LoadAnnotations" and t.get("with_mask")
               for t in dataset.get("pipeline") or [])


class CocoFormat:
    """COCO JSON with the images it names."""

    name = "coco"

    @staticmethod
    def _paths(root: Path, dataset: dict) -> tuple[Path, Path]:
        prefix = (dataset.get("data_prefix") or {}).get("img", "")
        return root / dataset.get("ann_file", "annotations.json"), root / prefix

    def check(self, root: Path, dataset: dict) -> list[str]:
        """The category names (by id) of the split at ``root``, after checking the JSON.

        Raises:
            OtxlikeError: A missing or unreadable JSON, no images, no categories, annotations of
                unknown images or categories, or image files that do not exist.
        """
        ann_path, img_dir = self._paths(root, dataset)
        try:
            coco = json.loads(ann_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise OtxlikeError(f"COCO file {ann_path} cannot be read ({exc.strerror})",
                               "each split folder needs its annotations.json") from exc
        except json.JSONDecodeError as exc:
            raise OtxlikeError(f"COCO file {ann_path} is not valid JSON (line {exc.lineno}: {exc.msg})") from exc
        if not isinstance(coco, dict):
            raise OtxlikeError(f"COCO file {ann_path} must hold an object with images, annotations, categories")
        images, anns, cats = (coco.get(k) or [] for k in ("images", "annotations", "categories"))
        if not cats:
            raise OtxlikeError(f"COCO file {ann_path} has no categories", "add the class list as 'categories'")
        if not images:
            raise OtxlikeError(f"COCO file {ann_path} has no images (empty split)", "give a split with images")
        if not anns:
            raise OtxlikeError(f"COCO file {ann_path} has no annotations (empty split)", "give a labelled split")
        image_ids = {img["id"] for img in images}
        cat_ids = {c["id"] for c in cats}
        bad_img = sum(a.get("image_id") not in image_ids for a in anns)
        bad_cat = {a.get("category_id") for a in anns} - cat_ids
        if bad_img:
            raise OtxlikeError(f"{ann_path}: {bad_img} annotations refer to image ids that are not in 'images'")
        if bad_cat:
            raise OtxlikeError(f"{ann_path}: annotations use category ids {sorted(bad_cat)} missing from 'categories'")
        missing = [img["file_name"] for img in images if not (img_dir / img["file_name"]).is_file()]
        if missing:
            raise OtxlikeError(
                f"{len(missing)} of {len(images)} images named in {ann_path} are missing under {img_dir}, "
                f"e.g. {missing[0]}", "fix the file names or the image folder",
            )
        bad = [f"annotation {a.get('id')} has bbox {a.get('bbox')!r}" for a in anns if not _is_box(a.get("bbox"))]
        if _loads_masks(dataset):
            bad += [f"annotation {a.get('id')} has no segmentation" for a in anns if not a.get("segmentation")]
        if bad:
            raise OtxlikeError(f"{ann_path}: " + problems_line("annotations are malformed", bad),
                               "a bbox is [x, y, width, height] with width, height > 0; instance segmentation "
                               "needs a polygon or RLE 'segmentation' on every annotation")
        check_images([img_dir / img["file_name"] for img in images], root)
        return [c["name"] for c in sorted(cats, key=lambda c: c["id"])]

    def configure(self, dataset: dict, evaluator: dict | None, root: Path, classes: list[str]) -> None:
        set_dataset_root(dataset, root, classes)
        if evaluator is not None and "ann_file" in evaluator:
            evaluator["ann_file"] = str(self._paths(root, dataset)[0])


class MMSegFormat:
    """Images and PNG label maps with the same file names, and classes.txt."""

    name = "mmseg"

    @staticmethod
    def _classes_file(root: Path) -> Path:
        for folder in (root, root.parent):
            if (folder / "classes.txt").is_file():
                return folder / "classes.txt"
        raise OtxlikeError(f"no classes.txt in {root} or its parent",
                           "write the class names there, one per line (line index = label value)")

    def check(self, root: Path, dataset: dict) -> list[str]:
        """The class names of the split at ``root``, after checking every label map.

        Raises:
            OtxlikeError: Missing folders or classes.txt, an empty split, images without a label
                map (or the reverse), or label values outside the class list (other than 255).
        """
        import numpy as np
        from PIL import Image

        prefix = dataset.get("data_prefix") or {}
        img_dir, label_dir = root / prefix.get("img_path", "images"), root / prefix.get("seg_map_path", "labels")
        for folder in (img_dir, label_dir):
            if not folder.is_dir():
                raise OtxlikeError(f"segmentation split {root} has no {folder.name}/ folder",
                                   "expected images/ and labels/ with the same file names")
        classes = [line.strip() for line in self._classes_file(root).read_text().splitlines() if line.strip()]
        img_suffix, seg_suffix = dataset.get("img_suffix", ".png"), dataset.get("seg_map_suffix", ".png")
        images = {p.name[: -len(img_suffix)] for p in img_dir.iterdir() if p.name.endswith(img_suffix)}
        labels = {p.name[: -len(seg_suffix)]: p for p in label_dir.iterdir() if p.name.endswith(seg_suffix)}
        if not images:
            raise OtxlikeError(f"{img_dir} has no *{img_suffix} images (empty split)")
        unmatched = sorted(images ^ set(labels))
        if unmatched:
            raise OtxlikeError(
                f"{len(unmatched)} images and label maps in {root} do not match by name, e.g. '{unmatched[0]}'",
                f"every image in {img_dir.name}/ needs a label map of the same name in {label_dir.name}/",
            )
        image_files = {p.name[: -len(img_suffix)]: p for p in img_dir.iterdir() if p.name.endswith(img_suffix)}
        check_images([image_files[stem] for stem in sorted(images)] + [labels[stem] for stem in sorted(images)], root)
        sizes = [f"{labels[stem].name} is {image_size(labels[stem])} but its image is {image_size(image_files[stem])}"
                 for stem in sorted(images) if image_size(labels[stem]) != image_size(image_files[stem])]
        if sizes:
            raise OtxlikeError(f"{root}: " + problems_line("label maps differ in size from their images", sizes),
                               "each label map must have its image's width and height")
        allowed = set(range(len(classes))) | {IGNORE_INDEX}
        for stem in sorted(images):
            values = set(np.unique(np.asarray(Image.open(labels[stem]))).tolist())
            if not values <= allowed:
                raise OtxlikeError(
                    f"label map {labels[stem]} has values {sorted(values - allowed)} outside the "
                    f"{len(classes)} classes of classes.txt", "fix the label maps or classes.txt",
                )
        return classes

    def configure(self, dataset: dict, evaluator: dict | None, root: Path, classes: list[str]) -> None:
        set_dataset_root(dataset, root, classes)


FORMATS = {f.name: f for f in (ImageNetFormat(), CocoFormat(), MMSegFormat())}
"""Formats by the name used in data.yaml and template.yaml."""


def get_format(name: str):
    """The format called ``name``.

    Raises:
        OtxlikeError: If there is none.
    """
    if name not in FORMATS:
        raise OtxlikeError(f"unknown data format '{name}' in data.yaml", f"known formats: {', '.join(FORMATS)}")
    return FORMATS[name]
