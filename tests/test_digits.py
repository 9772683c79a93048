import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from otxlike.data.digits import write_digits_classification


def test_full_split_counts_and_images(tmp_path):
    ds = write_digits_classification(tmp_path / "d")
    assert ds.num_train + ds.num_val == 1797  # every scan of load_digits(), once
    assert 350 <= ds.num_val <= 370  # 20 % per class
    assert ds.classes == tuple("0123456789")
    for split in ("train", "val"):
        assert sorted(p.name for p in (tmp_path / "d" / split).iterdir()) == list(ds.classes)
    img = Image.open(next((tmp_path / "d/train/3").glob("*.png")))
    assert img.size == (32, 32) and img.mode == "RGB"


def test_images_are_the_real_scans(tmp_path):
    ds = write_digits_classification(tmp_path / "d", size=8)
    path = next((ds.val_root / "7").glob("*.png"))
    index = int(path.stem)
    digits = load_digits()
    assert digits.target[index] == 7
    pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
    expected = (digits.images[index] * 255 / 16).clip(0, 255).astype(np.uint8)
    assert np.array_equal(pixels, expected)


def test_deterministic(tmp_path):
    a = write_digits_classification(tmp_path / "a", limit=5)
    b = write_digits_classification(tmp_path / "b", limit=5)
    names = lambda root: sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
    assert names(a.root) == names(b.root)


def test_refuses_existing_split(tmp_path):
    import pytest

    from otxlike.errors import OtxlikeError

    (tmp_path / "train").mkdir()
    with pytest.raises(OtxlikeError, match="already exists"):
        write_digits_classification(tmp_path)
