"""Writers of the data formats users bring, for tests: each turns the digits samples into one
format with the standard library only (``xml.etree`` for VOC, plain text for YOLO and lists,
``csv`` for CSV, Pillow for images), sharing no code with otxlike's readers.

The canvases sample (``write_digits_canvases``) gives COCO boxes and label maps; the digits
sample gives class folders. Each writer returns what it wrote, as the expected values of tests.
"""

from __future__ import annotations

import csv
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image

SPLITS = ("train", "val")


def _coco(split_root: Path) -> dict:
    return json.loads((Path(split_root) / "annotations.json").read_text())


def _classes(split_root: Path) -> list[str]:
    return [c["name"] for c in sorted(_coco(split_root)["categories"], key=lambda c: c["id"])]


# -- classification ------------------------------------------------------------------------------

def write_ann_list(digits, out: Path) -> dict:
    """mmpretrain's layout: ``meta/{train,val}.txt`` of ``<class>/<file> <label>``, images under
    ``out/<split>/``, ``meta/classes.txt``. Returns ``{split: number of lines}``."""
    (out / "meta").mkdir(parents=True)
    counts = {}
    for split, root in (("train", digits.train_root), ("val", digits.val_root)):
        shutil.copytree(root, out / split)
        lines = [f"{c}/{f.name} {label}" for label, c in enumerate(digits.classes) for f in sorted((root / c).iterdir())]
        (out / "meta" / f"{split}.txt").write_text("\n".join(lines) + "\n")
        counts[split] = len(lines)
    (out / "meta" / "classes.txt").write_text("\n".join(digits.classes) + "\n")
    return counts


NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write_csv(digits, out: Path, multi_label: bool = False) -> dict:
    """``{train,val}.csv`` with a header and spelled-out class names, images in ``images/``.
    ``multi_label``: every third image also gets the label ``odd`` / ``even``. Returns
    ``{split: {relative path: set of labels}}``."""
    (out / "images").mkdir(parents=True)
    written = {}
    for split, root in (("train", digits.train_root), ("val", digits.val_root)):
        rows, written[split] = [["image", "label"]], {}
        for c in digits.classes:
            for n, f in enumerate(sorted((root / c).iterdir())):
                rel = f"{split}_{c}_{f.name}"
                shutil.copy(f, out / "images" / rel)
                labels = {NAMES[int(c)]} | ({"odd" if int(c) % 2 else "even"} if multi_label and n % 3 == 0 else set())
                rows.append([rel, ";".join(sorted(labels))])
                written[split][rel] = labels
        with open(out / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
    return written


# -- detection -----------------------------------------------------------------------------------

def write_coco_standard(canvases, out: Path) -> None:
    """COCO's own layout: ``annotations/instances_<split>2017.json`` and ``<split>2017/`` images."""
    (out / "annotations").mkdir(parents=True)
    for split in SPLITS:
        src = canvases.root / split
        shutil.copytree(src / "images", out / f"{split}2017")
        shutil.copy(src / "annotations.json", out / "annotations" / f"instances_{split}2017.json")


def write_voc(canvases, out: Path) -> Path:
    """Pascal VOC under ``out/VOCdevkit/VOC2007``: one XML per image with 1-based inclusive corners
    (``xmin = x + 1``, ``xmax = x + w``), JPEG images named ``<id>.jpg`` (mmdet's ``VOCDataset``
    reads that name), ``ImageSets/Main/{train,val}.txt``. Returns the VOC folder."""
    voc = out / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    for split in SPLITS:
        coco = _coco(canvases.root / split)
        names = {c["id"]: c["name"] for c in coco["categories"]}
        ids = []
        for img in coco["images"]:
            img_id = f"{split}_{Path(img['file_name']).stem}"
            ids.append(img_id)
            Image.open(canvases.root / split / "images" / img["file_name"]).save(voc / "JPEGImages" / f"{img_id}.jpg", quality=95)
            root = ET.Element("annotation")
            ET.SubElement(root, "filename").text = f"{img_id}.jpg"
            size = ET.SubElement(root, "size")
            for key, value in (("width", img["width"]), ("height", img["height"]), ("depth", 3)):
                ET.SubElement(size, key).text = str(value)
            for a in (a for a in coco["annotations"] if a["image_id"] == img["id"]):
                obj = ET.SubElement(root, "object")
                ET.SubElement(obj, "name").text = names[a["category_id"]]
                ET.SubElement(obj, "difficult").text = "0"
                box = ET.SubElement(obj, "bndbox")
                x, y, w, h = a["bbox"]
                for key, value in (("xmin", x + 1), ("ymin", y + 1), ("xmax", x + w), ("ymax", y + h)):
                    ET.SubElement(box, key).text = str(value)
            ET.ElementTree(root).write(voc / "Annotations" / f"{img_id}.xml")
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return voc


def write_yolo(canvases, out: Path, polygons: bool = False) -> dict:
    """Ultralytics' layout: ``images/<split>/``, ``labels/<split>/<stem>.txt`` with
    ``class cx cy w h`` normalised by the image size (or, with ``polygons``, the box's four corners
    as a polygon), ``data.yaml`` with ``names``. Returns ``{split: {file name: [[x, y, w, h], ...]}}``
    in pixels, the boxes written."""
    boxes = {}
    out.mkdir(parents=True)
    (out / "data.yaml").write_text("names:\n" + "".join(f"  - '{n}'\n" for n in _classes(canvases.train_root)))
    for split in SPLITS:
        coco = _coco(canvases.root / split)
        (out / "labels" / split).mkdir(parents=True)
        shutil.copytree(canvases.root / split / "images", out / "images" / split)
        boxes[split] = {}
        for img in coco["images"]:
            W, H = img["width"], img["height"]
            lines, boxes[split][img["file_name"]] = [], []
            for a in (a for a in coco["annotations"] if a["image_id"] == img["id"]):
                x, y, w, h = a["bbox"]
                boxes[split][img["file_name"]].append([x, y, w, h])
                if polygons:
                    pts = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
                    lines.append(f"{a['category_id'] - 1} " + " ".join(f"{px / W:.6f} {py / H:.6f}" for px, py in pts))
                else:
                    lines.append(f"{a['category_id'] - 1} {(x + w / 2) / W:.6f} {(y + h / 2) / H:.6f} {w / W:.6f} {h / H:.6f}")
            (out / "labels" / split / f"{Path(img['file_name']).stem}.txt").write_text("\n".join(lines) + "\n")
    return boxes


# -- semantic segmentation -----------------------------------------------------------------------

def _label_pairs(canvases, split):
    folder = canvases.root / split
    for image in sorted((folder / "images").iterdir()):
        yield image, folder / "labels" / image.name


def write_cityscapes(canvases, out: Path) -> None:
    """Cityscapes names: ``leftImg8bit/<split>/city<k>/city<k>_000000_<n>_leftImg8bit.png`` and
    ``gtFine/<split>/city<k>/..._gtFine_labelTrainIds.png`` (two cities per split); ``classes.txt``."""
    for split in SPLITS:
        for n, (image, label) in enumerate(_label_pairs(canvases, split)):
            city = f"city{n % 2}"
            stem = f"{city}_000000_{n:06d}"
            for folder, suffix, src in (("leftImg8bit", "_leftImg8bit.png", image), ("gtFine", "_gtFine_labelTrainIds.png", label)):
                (out / folder / split / city).mkdir(parents=True, exist_ok=True)
                shutil.copy(src, out / folder / split / city / f"{stem}{suffix}")
    shutil.copy(canvases.root / "train" / "classes.txt", out / "classes.txt")


def write_ade20k(canvases, out: Path) -> None:
    """ADE20K's layout: ``images/{training,validation}/*.jpg`` and ``annotations/.../*.png`` whose
    values are the class + 1 (0 = unlabelled, which these maps never use); ``classes.txt``."""
    import numpy as np

    for split, name in (("train", "training"), ("val", "validation")):
        (out / "images" / name).mkdir(parents=True)
        (out / "annotations" / name).mkdir(parents=True)
        for image, label in _label_pairs(canvases, split):
            Image.open(image).save(out / "images" / name / f"{image.stem}.jpg", quality=95)
            Image.fromarray((np.asarray(Image.open(label)) + 1).astype(np.uint8)).save(out / "annotations" / name / label.name)
    shutil.copy(canvases.root / "train" / "classes.txt", out / "classes.txt")


def write_voc_seg(canvases, out: Path) -> Path:
    """Pascal VOC segmentation under ``out/VOC2012``: palette PNGs in ``SegmentationClass/``
    (index = class), JPEG images, ``ImageSets/Segmentation/{train,val}.txt``; ``classes.txt``."""
    voc = out / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    palette = [v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)]
    for split in SPLITS:
        ids = []
        for image, label in _label_pairs(canvases, split):
            img_id = f"{split}_{image.stem}"
            ids.append(img_id)
            Image.open(image).save(voc / "JPEGImages" / f"{img_id}.jpg", quality=95)
            labels = Image.open(label)
            mask = Image.frombytes("P", labels.size, labels.tobytes())  # label values as palette indices
            mask.putpalette(palette)
            mask.save(voc / "SegmentationClass" / f"{img_id}.png")
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    shutil.copy(canvases.root / "train" / "classes.txt", voc / "classes.txt")
    return voc
