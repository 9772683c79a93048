"""Source-level edits of an mmengine config keep everything but the edited spans."""

import pytest
from mmengine.config import Config

from otxlike.configedit.source import ConfigSource, format_value
from otxlike.errors import OtxlikeError

TEXT = """# my notes about this model
base_lr = 0.01  # shared variable
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=18),  # keep this comment
    head=dict(type='LinearClsHead', num_classes=10, in_channels=512),
)
"""


def _load(tmp_path, text):
    path = tmp_path / "model.py"
    path.write_text(text)
    return Config.fromfile(str(path))


def test_replace_backbone_keeps_the_rest(tmp_path):
    src = ConfigSource(TEXT)
    src.replace(("model", "backbone"), {"type": "mmdet.RegNet", "arch": "regnetx_400mf"})
    src.set_key(("model", "head"), "in_channels", 384)
    out = src.result()
    assert "# my notes about this model" in out and "# keep this comment" in out
    assert "base_lr = 0.01  # shared variable" in out
    cfg = _load(tmp_path, out)
    assert cfg.model.backbone == {"type": "mmdet.RegNet", "arch": "regnetx_400mf"}
    assert cfg.model.head.in_channels == 384 and cfg.model.head.num_classes == 10


def test_set_key_inserts_missing_key(tmp_path):
    src = ConfigSource(TEXT)
    src.set_key(("model", "head"), "topk", (1,))
    cfg = _load(tmp_path, src.result())
    assert cfg.model.head.topk == (1,)


def test_format_value_round_trips():
    value = {"type": "X", "out_indices": (3,), "norm_cfg": {"type": "BN"}, "strides": [1, 2], "name": None}
    assert eval(format_value(value)) == value


def test_errors():
    with pytest.raises(OtxlikeError, match="not valid Python"):
        ConfigSource("model = dict(")
    with pytest.raises(OtxlikeError, match="no 'model.neck'"):
        ConfigSource(TEXT).replace(("model", "neck"), {})
    with pytest.raises(OtxlikeError, match="no dict"):
        ConfigSource(TEXT).set_key(("optim",), "lr", 1)
