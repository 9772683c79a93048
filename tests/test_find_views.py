"""find's detail view and its --json documents."""

import json


def test_detail_view_of_an_mmdet_backbone(cli):
    result = cli("find", "--backbone", "mmdet.ResNeXt")
    assert result.exit_code == 0, result.output
    assert "resnext.py" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("│ depth *"))
    assert "required (options: 50, 101, 152)" in row  # ResNeXt's own arch_settings
    # ResNeXt-50 (Xie et al. 2017, table 1): 256/512/1024/2048 channels at strides 4/8/16/32
    assert "256 ch @ stride 4, 512 ch @ stride 8, 1024 ch @ stride 16, 2048 ch @ stride 32" in result.output


def test_detail_view_of_a_backbone_with_presets(cli):
    """HRNet's ``extra`` has no declared options; its presets come from mmdet's configs and the
    first (HRNetV2-W18) is measured: widths 18/36/72/144 at strides 4..32 (Wang et al., 2019)."""
    result = cli("find", "--backbone", "mmdet.HRNet")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("│ extra"))
    assert "required (options: hrnetv2p-w18," in row
    assert "18 ch @ stride 4, 36 ch @ stride 8, 72 ch @ stride 16, 144 ch @ stride 32" in result.output


def test_detail_view_of_a_backbone_needing_input(cli, needs_input):
    result = cli("find", "--backbone", "custom.needs_width", "--workspace", needs_input.root)
    assert result.exit_code == 0 and "not measured (needs input: width)" in result.output


def test_json_list_and_detail(cli):
    doc = json.loads(cli("find", "--backbone", "torchvision", "--json").output)
    assert doc["version"] == 1
    resnet = next(b for b in doc["backbones"] if b["name"] == "torchvision.resnet18")
    assert resnet["source"].endswith("torchvision/models/resnet.py")
    assert resnet["args"][0]["name"] == "weights" and resnet["args"][0]["default"] is None

    doc = json.loads(cli("find", "--backbone", "mmdet.RegNet", "--json").output)
    assert doc["backbone"]["args"][0]["name"] == "arch" and doc["backbone"]["args"][0]["required"] is True
    assert [o["stride"] for o in doc["outputs"]] == [4, 8, 16, 32] and doc["error"] is None

    doc = json.loads(cli("find", "--json").output)
    assert {t["task"] for t in doc["templates"]} == {"classification", "detection", "instance-segmentation",
                                                       "segmentation"}
    assert doc["libraries"] == ["mmdet", "mmseg", "mmpretrain", "torchvision", "timm", "custom"]
