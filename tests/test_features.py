"""Declared output shapes agree with measured ones, for a sample of every provider.

The otxlike wrappers (torchvision, timm, custom) declare ``out_channels`` and ``strides``; they are
checked against a forward pass at another input size than the one they were declared with. The
OpenMMLab libraries declare their backbones' channels in their own shipped configs (the
``in_channels`` of the neck or head reading the backbone, ``<pkg>/.mim/configs``); those are
checked against what :func:`otxlike.catalog.shapes.infer_feature_shapes` measures.
"""

import importlib
import shutil
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

from otxlike.catalog.lookup import get_backbone, provider
from otxlike.catalog.shapes import infer_feature_shapes
from otxlike.catalog.values import default_values, model_values
from otxlike.models.features import PROBE_SIZE, stride_of

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
MEASURE_SIZE = 192  # pixels: not PROBE_SIZE, so a declaration copied from the probe still has to hold


def _measured(module, size=MEASURE_SIZE):
    module.eval()
    with torch.no_grad():
        outs = module(torch.zeros(1, 3, size, size))
    return tuple(int(o.shape[1]) for o in outs), tuple(stride_of(size, int(o.shape[-1])) for o in outs)


def _build(name):
    spec = get_backbone(name)
    lib = provider(spec.library)
    cfg = lib.model_cfg(spec, model_values(spec, default_values(spec)[0]))
    with DefaultScope.overwrite_default_scope(lib.scope):
        return MODELS.build(cfg)


@pytest.mark.parametrize("name, channels, strides", [
    # ResNet-18 (He et al. 2016, table 1)
    ("torchvision.resnet18", (64, 128, 256, 512), (4, 8, 16, 32)),
    # Swin-T (Liu et al. 2021, section 3.3: C = 96, doubling per stage); torchvision returns (N, H, W, C)
    ("torchvision.swin_t", (96, 192, 384, 768), (4, 8, 16, 32)),
    ("torchvision.mobilenet_v3_small", None, None),
    ("timm.resnet18", (64, 64, 128, 256, 512), (2, 4, 8, 16, 32)),
    ("timm.efficientnet_b0", (16, 24, 40, 112, 320), (2, 4, 8, 16, 32)),  # Tan & Le 2019, table 1
    ("timm.convnext_atto", None, None),
])
def test_wrappers_declare_what_they_return(name, channels, strides):
    module = _build(name)
    declared = (tuple(module.out_channels), tuple(module.strides))
    assert declared == _measured(module)
    if channels is not None:
        assert declared == (channels, strides)


def test_custom_backbone_declares_what_it_returns(workspace):
    shutil.copy(EXAMPLES / "custom_backbones.py", workspace.root / "custom_backbones.py")
    workspace.load_custom_modules()
    module = _build("custom.squeezenet1_1")
    assert (tuple(module.out_channels), tuple(module.strides)) == _measured(module)


@pytest.mark.parametrize("package, config, reader", [
    ("mmdet", "regnet/faster-rcnn_regnetx-3.2GF_fpn_1x_coco.py", "neck"),
    ("mmseg", "_base_/models/fpn_r50.py", "neck"),
    ("mmseg", "_base_/models/segformer_mit-b0.py", "decode_head"),
    ("mmpretrain", "_base_/models/resnet18.py", "head"),
])
def test_mm_backbones_give_the_channels_their_library_configs_declare(package, config, reader):
    root = Path(importlib.import_module(package).__file__).parent / ".mim" / "configs"
    model = Config.fromfile(str(root / config)).model
    backbone = {**model.backbone.to_dict(), "init_cfg": None}
    declared = model[reader].in_channels
    measured = infer_feature_shapes(backbone, package, PROBE_SIZE).channels
    assert list(measured) == (list(declared) if isinstance(declared, (list, tuple)) else [declared])
