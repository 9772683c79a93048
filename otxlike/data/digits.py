"""Write scikit-learn's UCI handwritten digits as an ImageNet-style class-per-folder dataset.

The source is ``sklearn.datasets.load_digits``: 1,797 real 8x8 scans of handwritten digits,
10 classes, grey levels 0..16 (UCI ML "Optical Recognition of Handwritten Digits"). They are
upscaled to ``size`` x ``size`` RGB PNGs (bilinear) and split per class with a seeded shuffle, so
the output is identical on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from otxlike.errors import OtxlikeError
from otxlike.fileio import check_folder_path


@dataclass(frozen=True)
class SampleDataset:
    """Where a sample dataset was written.

    Attributes:
        root: The dataset folder.
        train_root: ``root/train``, one sub-folder per class.
        val_root: ``root/val``, one sub-folder per class.
        num_train: Images written to the train split.
        num_val: Images written to the val split.
        classes: Class names (folder names), in label order.
    """

    root: Path
    train_root: Path
    val_root: Path
    num_train: int
    num_val: int
    classes: tuple[str, ...]


def write_digits_classification(
    root: Path, val_fraction: float = 0.2, size: int = 32, seed: int = 0, limit: int | None = None
) -> SampleDataset:
    """Write the digits as ``root/{train,val}/<digit>/<index>.png``.

    Args:
        root: Output folder; created if missing. Must not already hold a ``train`` or ``val`` folder.
        val_fraction: Share of each class that goes to ``val`` (0 < f < 1); 0.2 gives 1,438 / 359.
        size: Output side in pixels; the 8x8 scans are upscaled bilinearly.
        seed: Seed of the per-class shuffle.
        limit: If given, keep at most this many images per class before splitting (for quick tests).

    Returns:
        A :class:`SampleDataset` describing what was written.

    Raises:
        OtxlikeError: If ``root`` already holds a split folder or an argument is out of range.
    """
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    if not 0.0 < val_fraction < 1.0:
        raise OtxlikeError(f"val fraction must be between 0 and 1, got {val_fraction}")
    if size < 8:
        raise OtxlikeError(f"image size must be at least 8 pixels, got {size}")
    root = Path(root)
    check_folder_path(root, "--out")
    for split in ("train", "val"):
        if (root / split).exists():
            raise OtxlikeError(
                f"{root / split} already exists", "choose an empty --out folder or delete it first"
            )

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)  # (1797, 8, 8)
    rng = np.random.default_rng(seed)
    classes = tuple(str(c) for c in range(10))
    counts = {"train": 0, "val": 0}
    for label in range(10):
        idx = np.flatnonzero(digits.target == label)
        rng.shuffle(idx)
        if limit is not None:
            idx = idx[:limit]
        n_val = max(1, round(len(idx) * val_fraction))
        for split, part in (("val", idx[:n_val]), ("train", idx[n_val:])):
            folder = root / split / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            for i in part:
                img = Image.fromarray(images[i], mode="L").resize((size, size), Image.BILINEAR)
                img.convert("RGB").save(folder / f"{i:04d}.png")
            counts[split] += len(part)
    return SampleDataset(
        root=root,
        train_root=root / "train",
        val_root=root / "val",
        num_train=counts["train"],
        num_val=counts["val"],
        classes=classes,
    )


SEG_CLASSES = ("background",) + tuple(str(c) for c in range(10))
"""Semantic classes of the canvas label maps: value 0 is background, value d + 1 is digit d."""


@dataclass(frozen=True)
class CanvasDataset:
    """Where a canvas dataset was written (see :func:`write_digits_canvases`).

    Attributes:
        root: The dataset folder.
        train_root: ``root/train`` (``images/``, ``labels/``, ``annotations.json``, ``classes.txt``).
        val_root: ``root/val``, same layout.
        num_train: Canvases in train.
        num_val: Canvases in val.
        num_objects: Digits pasted over both splits.
    """

    root: Path
    train_root: Path
    val_root: Path
    num_train: int
    num_val: int
    num_objects: int


def _paste_canvas(rng, scans, labels, canvas: int, per_image: tuple[int, int], scale: tuple[int, int]):
    """One canvas (H, W) uint8 with non-overlapping digits; returns it and [(label, mask), ...]."""
    import numpy as np
    from PIL import Image

    image = np.zeros((canvas, canvas), np.uint8)
    taken = np.zeros((canvas, canvas), bool)
    objects = []
    for _ in range(rng.integers(per_image[0], per_image[1] + 1)):
        for _attempt in range(20):  # rejection sampling of a free spot
            side = int(rng.integers(scale[0], scale[1] + 1))
            y, x = (int(v) for v in rng.integers(0, canvas - side + 1, size=2))
            if not taken[y:y + side, x:x + side].any():
                break
        else:
            continue
        i = int(rng.integers(len(scans)))
        digit = np.asarray(Image.fromarray(scans[i]).resize((side, side), Image.BILINEAR))
        mask = np.zeros((canvas, canvas), bool)
        mask[y:y + side, x:x + side] = digit > 64  # the stroke: a quarter of full intensity
        if mask.sum() < 4:
            continue
        image[y:y + side, x:x + side] = np.maximum(image[y:y + side, x:x + side], digit)
        taken[y:y + side, x:x + side] = True
        objects.append((int(labels[i]), mask))
    return image, objects


def write_digits_canvases(
    root: Path,
    num_train: int = 200,
    num_val: int = 50,
    canvas: int = 128,
    per_image: tuple[int, int] = (2, 4),
    scale: tuple[int, int] = (24, 48),
    seed: int = 0,
) -> CanvasDataset:
    """Paste real digit scans onto black canvases; derive boxes, instance masks and label maps.

    The scans of scikit-learn's digits are first split 80/20 per class (seeded), so val canvases
    only hold scans that train canvases never show. Each canvas gets ``per_image`` digits at
    seeded random, non-overlapping places, each upscaled (bilinear) to a side drawn from ``scale``.
    A digit's instance mask is its stroke (pixels above 64 of 255), its box the mask's tight box.

    Written per split (``train``, ``val``):
        - ``images/NNNNNN.png``: RGB canvases, ``canvas`` x ``canvas`` pixels;
        - ``annotations.json``: COCO detection/instance format, categories ``'0'``..``'9'`` with
          ids 1..10, ``bbox`` as ``[x, y, w, h]`` in pixels, masks as compressed RLE;
        - ``labels/NNNNNN.png``: mmseg label maps, 0 background and d + 1 for digit d;
        - ``classes.txt``: the label-map class names, one per line (line index = value).

    Raises:
        OtxlikeError: If a split folder already exists or an argument is out of range.
    """
    import json

    import numpy as np
    from PIL import Image
    from pycocotools import mask as mask_utils
    from sklearn.datasets import load_digits

    if num_train < 1 or num_val < 1:
        raise OtxlikeError("each split needs at least one canvas")
    if not 8 <= scale[0] <= scale[1] <= canvas:
        raise OtxlikeError(f"digit sizes {scale} must lie between 8 and the canvas size {canvas}")
    root = Path(root)
    check_folder_path(root, "--out")
    for split in ("train", "val"):
        if (root / split).exists():
            raise OtxlikeError(f"{root / split} already exists", "choose an empty --out folder or delete it first")

    digits = load_digits()
    scans = (digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": []}
    for label in range(10):
        idx = np.flatnonzero(digits.target == label)
        rng.shuffle(idx)
        n_val = round(len(idx) * 0.2)
        parts["val"].extend(idx[:n_val])
        parts["train"].extend(idx[n_val:])

    total = 0
    for split, count in (("train", num_train), ("val", num_val)):
        folder = root / split
        (folder / "images").mkdir(parents=True)
        (folder / "labels").mkdir()
        idx = np.array(parts[split])
        coco = {
            "images": [], "annotations": [],
            "categories": [{"id": d + 1, "name": str(d)} for d in range(10)],
        }
        for n in range(count):
            image, objects = _paste_canvas(rng, scans[idx], digits.target[idx], canvas, per_image, scale)
            name = f"{n:06d}.png"
            Image.fromarray(image).convert("RGB").save(folder / "images" / name)
            label_map = np.zeros_like(image)
            coco["images"].append({"id": n + 1, "file_name": name, "height": canvas, "width": canvas})
            for label, mask in objects:
                label_map[mask] = label + 1
                ys, xs = np.nonzero(mask)
                rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
                rle["counts"] = rle["counts"].decode("ascii")
                coco["annotations"].append({
                    "id": len(coco["annotations"]) + 1, "image_id": n + 1, "category_id": label + 1,
                    "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
                    "area": int(mask.sum()), "iscrowd": 0, "segmentation": rle,
                })
            Image.fromarray(label_map).save(folder / "labels" / name)
        (folder / "annotations.json").write_text(json.dumps(coco))
        (folder / "classes.txt").write_text("\n".join(SEG_CLASSES) + "\n")
        total += len(coco["annotations"])
    return CanvasDataset(root, root / "train", root / "val", num_train, num_val, total)
