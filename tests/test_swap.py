"""build --backbone: real mmdet/mmseg/torchvision backbones swapped into a real workspace."""

import pytest
import torch
import yaml
from mmengine.config import Config

from otxlike.configedit.backbone import swap_backbone
from otxlike.errors import OtxlikeError
from tests.conftest import snapshot


def _mmdet_channels(**cfg):
    """Output channels of an mmdet backbone built through the registry (scoped type: the global
    default scope may be another library's after a Runner ran)."""
    from mmdet.registry import MODELS

    MODELS.import_from_location()
    module = MODELS.build(cfg)
    module.eval()
    with torch.no_grad():
        return [o.shape[1] for o in module(torch.zeros(1, 3, 64, 64))]


def _detection_workspace(tmp_path, canvases):
    """A new ATSS workspace (FPN from stride 8 of a ResNet's 4..32) on the canvas sample."""
    from otxlike.configedit.data import create_workspace
    from otxlike.workspace.workspace import Workspace

    return Workspace.load(create_workspace("detection", tmp_path / "det", train_root=canvases.train_root,
                                           val_root=canvases.val_root).root)


def test_swap_mmdet_regnet(workspace):
    result = swap_backbone(workspace, "mmdet.RegNet")
    expected = _mmdet_channels(type="mmdet.RegNet", arch="regnetx_400mf")
    assert list(result.shapes.channels) == expected and result.shapes.strides == (4, 8, 16, 32)
    cfg = Config.fromfile(str(workspace.model_py))
    assert cfg.model.backbone.type == "mmdet.RegNet" and cfg.model.backbone.arch == "regnetx_400mf"
    assert cfg.model.backbone.norm_eval is False  # the template's backbone_defaults
    assert cfg.model.head.in_channels == expected[-1]
    text = workspace.model_py.read_text()
    assert "# Training schedule." in text and "neck=dict(type='otxlike.GlobalAveragePooling')" in text
    doc = yaml.safe_load(workspace.backbone_yaml.read_text())
    assert doc["backbone"]["type"] == "mmdet.RegNet" and doc["backbone"]["out_indices"] == [0, 1, 2, 3]
    assert workspace.manifest["backbone"] == "mmdet.RegNet"
    assert list((workspace.root / ".backup").rglob("model.py"))


def test_edited_backbone_yaml_is_applied(workspace):
    swap_backbone(workspace, "mmdet.RegNet")
    doc = yaml.safe_load(workspace.backbone_yaml.read_text())
    doc["backbone"]["arch"] = "regnetx_800mf"
    workspace.backbone_yaml.write_text(yaml.safe_dump(doc))
    result = swap_backbone(workspace, str(workspace.backbone_yaml))
    expected = _mmdet_channels(type="mmdet.RegNet", arch="regnetx_800mf")
    assert Config.fromfile(str(workspace.model_py)).model.head.in_channels == expected[-1]
    assert result.files == (workspace.model_py,)  # the user's backbone.yaml is left as they wrote it


def test_swap_torchvision(workspace):
    swap_backbone(workspace, "torchvision.resnet18")
    cfg = Config.fromfile(str(workspace.model_py))
    assert cfg.model.backbone.type == "otxlike.TorchvisionBackbone"
    assert cfg.model.backbone.return_nodes == ["layer1", "layer2", "layer3", "layer4"]
    assert cfg.model.head.in_channels == 512


def test_required_arg_without_options_leaves_model_py(needs_input):
    workspace = needs_input
    before = workspace.model_py.read_bytes()
    result = swap_backbone(workspace, "custom.needs_width")  # nothing names a width
    assert result.missing == ("width",)
    assert workspace.model_py.read_bytes() == before
    text = workspace.backbone_yaml.read_text()
    assert "width: null  # REQUIRED" in text
    with pytest.raises(OtxlikeError, match="width of custom.needs_width is still empty"):
        swap_backbone(workspace, str(workspace.backbone_yaml))
    assert workspace.model_py.read_bytes() == before


@pytest.mark.parametrize(
    "content, message",
    [
        ("backbone: [1, 2", "not valid YAML"),
        ("foo: 1", "must hold a mapping 'backbone:'"),
        ("backbone: {type: mmdet.RegNet, arch: regnetx_400mf, colour: red}", "takes no argument 'colour'"),
        ("backbone: {type: mmdet.RegNet, arch: regnetx_9000}", "could not build backbone mmdet.RegNet"),
        ("backbone: {type: mmdet.ResNt, depth: 18}", "did you mean"),
    ],
)
def test_bad_backbone_yaml_changes_nothing(workspace, tmp_path, content, message):
    path = tmp_path / "backbone.yaml"
    path.write_text(content)
    before = snapshot(workspace.root)
    with pytest.raises(OtxlikeError, match=message):
        swap_backbone(workspace, str(path))
    assert snapshot(workspace.root) == before


def test_backbone_that_breaks_the_model_changes_nothing(workspace):
    # mmseg's MobileNetV3 returns a list, which mmpretrain's own GlobalAveragePooling rejects
    # (the template's otxlike neck takes it): caught by the whole-model check before anything
    # is written.
    text = workspace.model_py.read_text().replace("type='otxlike.GlobalAveragePooling'", "type='GlobalAveragePooling'")
    workspace.model_py.write_text(text)
    before = snapshot(workspace.root)
    with pytest.raises(OtxlikeError, match="does not run"):
        swap_backbone(workspace, "mmseg.MobileNetV3")
    assert snapshot(workspace.root) == before


def test_unknown_consumer_type_is_reported(workspace):
    text = workspace.model_py.read_text().replace("type='LinearClsHead'", "type='MyHead'")
    workspace.model_py.write_text(text)
    with pytest.raises(OtxlikeError, match="no rule for it"):
        swap_backbone(workspace, "torchvision.resnet18")
    assert workspace.model_py.read_text() == text


def test_backbone_yaml_of_another_workspace_folder(workspace, cli, tmp_path):
    """`build -w WS --backbone backbone.yaml` from another folder edits WS with WS's backbone.yaml;
    a file of that name in the current folder would win (the shell's rule), one in neither place
    is one line naming both."""
    swap_backbone(workspace, "mmdet.RegNet")
    doc = yaml.safe_load(workspace.backbone_yaml.read_text())
    doc["backbone"]["arch"] = "regnetx_800mf"
    workspace.backbone_yaml.write_text(yaml.safe_dump(doc))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = cli("build", "-w", workspace.root, "--backbone", "backbone.yaml", cwd=elsewhere)
    assert result.exit_code == 0, result.output
    expected = _mmdet_channels(type="mmdet.RegNet", arch="regnetx_800mf")
    assert Config.fromfile(str(workspace.model_py)).model.head.in_channels == expected[-1]
    missing = cli("build", "-w", workspace.root, "--backbone", "other.yaml", cwd=elsewhere)
    assert missing.exit_code == 2
    assert "exists neither in the current folder" in missing.output and str(workspace.root) in missing.output


def test_binary_yaml_is_one_line(workspace, cli, tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(128, 256)))
    before = workspace.model_py.read_text()
    for flag in ("--backbone", "--head"):
        result = cli("build", "-w", workspace.root, flag, binary)
        assert result.exit_code == 2 and "is not a text file" in result.output, result.output
    assert workspace.model_py.read_text() == before


def test_backbones_built_for_one_input_size_get_the_workspaces(workspace, tmp_path, canvases):
    """BEiT and TinyViT (img_size 224 by default) and timm's Swin (fixed_input_size) are built
    for the workspace's input size instead of failing on it; Swin's (N, H, W, C) levels come out as
    (N, C, H, W): Swin-T's C, 2C, 4C, 8C with C = 96 at strides 4..32 (Liu et al., 2021)."""
    result = swap_backbone(workspace, "mmseg.BEiT")  # classification template: 32 x 32
    assert result.values["img_size"] == 32 and result.shapes.channels == (768,)
    # TinyViT indexes its (224, 224) default: it gets a pair; TinyViT-5M ends with 320 channels
    # (Wu et al., 2022, Table 1)
    result = swap_backbone(workspace, "mmpretrain.TinyViT")
    assert tuple(result.values["img_size"]) == (32, 32) and result.shapes.channels == (320,)
    det = _detection_workspace(tmp_path, canvases)
    result = swap_backbone(det, "timm.swin_tiny_patch4_window7_224")
    assert result.values["img_size"] == 128
    assert result.shapes.channels == (96, 192, 384, 768) and result.shapes.strides == (4, 8, 16, 32)


def test_mmpretrain_transformers_return_maps_the_heads_read(workspace, tmp_path, canvases):
    """mmpretrain's VisionTransformer returns its class token, an (N, C) vector, by default
    (``out_type='cls_token'``): the swap asks for ``'featmap'``, the patch tokens as an
    (N, C, H, W) map, which the classifier's pooling neck reads: ViT-B's 768 channels at stride 16,
    its patch size (Dosovitskiy et al., 2021, Table 1). mmpretrain's Swin asserts when a map is
    smaller than its 7 x 7 window (stage 4 of a 128-pixel input is 4 x 4): it gets
    ``pad_small_map=True`` and gives a detector Swin-T's C, 2C, 4C, 8C with C = 96 at strides
    4..32 (Liu et al., 2021)."""
    result = swap_backbone(workspace, "mmpretrain.VisionTransformer")  # 32 x 32
    assert result.values["out_type"] == "featmap"
    assert result.shapes.channels == (768,) and result.shapes.strides == (16,)
    assert Config.fromfile(str(workspace.model_py)).model.backbone.out_type == "featmap"
    det = _detection_workspace(tmp_path, canvases)
    result = swap_backbone(det, "mmpretrain.SwinTransformer")
    assert result.values["pad_small_map"] is True
    assert result.shapes.channels == (96, 192, 384, 768) and result.shapes.strides == (4, 8, 16, 32)


def test_timm_levels_are_kept_by_timms_own_indices(tmp_path, canvases):
    """timm numbers DLA's ``features_only`` levels 1..5 (``feature_cfg=dict(out_indices=(1, 2, 3,
    4, 5))`` in timm/models/dla.py), at strides 2..32 with DLA-34's 32, 64, 128, 256, 512 channels
    (Yu et al., 2018). ATSS's FPN takes strides 4 to 32 (the template's ResNet stages) and reads
    from 8 on: levels 2 to 5, not positions 1 to 4 (which would give the neck 64 channels at
    stride 8, where it was set to 128, and the model would not run)."""
    det = _detection_workspace(tmp_path, canvases)
    result = swap_backbone(det, "timm.dla34")
    assert tuple(Config.fromfile(str(det.model_py)).model.backbone.out_indices) == (2, 3, 4, 5)
    assert result.shapes.channels == (64, 128, 256, 512) and result.shapes.strides == (4, 8, 16, 32)
