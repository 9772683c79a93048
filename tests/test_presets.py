"""Presets of structured backbone arguments: the values the libraries' own configs give them,
usable by name in backbone.yaml."""

import importlib
from pathlib import Path

import pytest
import yaml
from mmengine.config import Config

from otxlike.configedit.backbone import swap_backbone
from otxlike.configedit.data import create_workspace
from otxlike.errors import OtxlikeError
from otxlike.workspace.workspace import Workspace


def _plain(value):
    """Config values with tuples as lists, to compare a config file's value with model.py's."""
    import json

    return json.loads(json.dumps(value.to_dict() if hasattr(value, "to_dict") else value))


def _config(package, path):
    return Config.fromfile(str(Path(importlib.import_module(package).__file__).parent / ".mim" / "configs" / path))


@pytest.fixture
def det(tmp_path, canvases):
    return Workspace.load(create_workspace("detection", tmp_path / "ws", train_root=canvases.train_root,
                                           val_root=canvases.val_root).root)


def test_hrnet_presets_are_the_values_of_mmdets_configs(det):
    """``build --backbone mmdet.HRNet`` fills ``extra`` with the first preset (HRNetV2p-W18) and
    writes mmdet's own value to model.py; editing backbone.yaml to another preset name gives the
    widths of the HRNet paper (Wang et al., 2019: C, 2C, 4C, 8C for HRNetV2-W C)."""
    result = swap_backbone(det, "mmdet.HRNet")
    assert result.values["extra"] == "hrnetv2p-w18"
    expected = _config("mmdet", "hrnet/faster-rcnn_hrnetv2p-w18-1x_coco.py").model.backbone.extra
    assert _plain(Config.fromfile(str(det.model_py)).model.backbone.extra) == _plain(expected)
    assert result.shapes.channels == (18, 36, 72, 144) and result.shapes.strides == (4, 8, 16, 32)

    doc = yaml.safe_load(det.backbone_yaml.read_text())
    assert "#   hrnetv2p-w32: the value in mmdet configs/hrnet/" in det.backbone_yaml.read_text()
    doc["backbone"]["extra"] = "hrnetv2p-w32"
    det.backbone_yaml.write_text(yaml.safe_dump(doc))
    result = swap_backbone(det, "backbone.yaml")
    assert result.shapes.channels == (32, 64, 128, 256)
    assert _plain(Config.fromfile(str(det.model_py)).model.backbone.extra) == \
        _plain(_config("mmdet", "hrnet/faster-rcnn_hrnetv2p-w32-1x_coco.py").model.backbone.extra)

    doc["backbone"]["extra"] = "hrnetv2p-w99"
    det.backbone_yaml.write_text(yaml.safe_dump(doc))
    with pytest.raises(OtxlikeError, match="'hrnetv2p-w99' is not a preset of extra.*hrnetv2p-w18, hrnetv2p-w32"):
        swap_backbone(det, "backbone.yaml")


def test_find_lists_presets_as_options(cli):
    table = cli("find", "--backbone", "mmseg").output
    row = next(line for line in table.splitlines() if "mmseg.BiSeNetV1" in line)
    assert "backbone_cfg" in row and "bisenetv1_r18-d32" in " ".join(table.split())


def test_the_shipped_table_is_what_mining_the_installed_configs_gives():
    """presets.json was mined from the pinned versions; mining again must give the same."""
    import json

    from otxlike.catalog.presets import SHIPPED, mine

    shipped = json.loads(SHIPPED.read_text())["mmdet"]
    assert mine("mmdet", {"HRNet": ["extra"]})["presets"]["HRNet"] == shipped["presets"]["HRNet"]


def test_timm_backbone_of_mmseg_takes_the_model_names_of_mmdets_timm_configs(tmp_path, canvases):
    """No mmseg config names a ``model_name`` for its ``TIMMBackbone``; mmdet's ``timm_example``
    configs do for mmpretrain's, which takes the same timm names. Swapped into the segmentation
    template (levels picked through timm's ``out_indices``), EfficientNet-B1 gives the channels
    that mmdet's config gives its FPN."""
    ws = Workspace.load(create_workspace("segmentation", tmp_path / "ws", train_root=canvases.train_root,
                                         val_root=canvases.val_root).root)
    result = swap_backbone(ws, "mmseg.TIMMBackbone")
    assert result.values["model_name"] == "efficientnet_b1" and result.values["pretrained"] is False
    expected = _config("mmdet", "timm_example/retinanet_timm-efficientnet-b1_fpn_1x_coco.py").model.neck.in_channels
    assert list(result.shapes.channels) == list(expected) and result.shapes.strides == (4, 8, 16, 32)
