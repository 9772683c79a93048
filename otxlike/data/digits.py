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
        val_fraction: Share of each class that goes to ``val`` (0 < f < 1); 0.2 gives 1,437 / 360.
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
