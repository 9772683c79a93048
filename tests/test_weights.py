"""Pretrained weights: found where mmengine and torch.hub look, loaded for real, and never dropped
without a word. Offline: the files are made in the test and put into the exact cache path."""

import json

import pytest
import torch
import yaml
from mmengine.config import ConfigDict

from otxlike.configedit.data import create_workspace
from otxlike.data.digits import write_digits_classification
from otxlike.engine.hparams import HParams
from otxlike.engine.train import train
from otxlike.engine.weights import preflight, resolve
from otxlike.errors import OtxlikeError
from otxlike.workspace.workspace import Workspace

UNREACHABLE = "http://127.0.0.1:9/resnet18.pth"  # the discard port: refused at once, with or without a network


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub folder (``$TORCH_HOME/hub``) for this test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub"


def test_torchvision_names_resolve_to_torchvision_urls_and_the_hub_cache(hub):
    from torchvision.models import ResNet18_Weights

    url, cache = resolve("torchvision://resnet18")
    assert url == ResNet18_Weights.IMAGENET1K_V1.url  # torchvision's own table
    assert cache == hub / "checkpoints" / "resnet18-f37072fd.pth"
    url, cache = resolve("open-mmlab://resnet18_v1c")
    assert url.startswith("https://download.openmmlab.com/") and cache.parent == hub / "checkpoints"
    assert resolve("/data/weights.pth") == (None, __import__("pathlib").Path("/data/weights.pth"))
    with pytest.raises(OtxlikeError, match="mmengine knows no checkpoint 'torchvision://resnet1'"):
        resolve("torchvision://resnet1")


def _model(checkpoint):
    return ConfigDict(backbone=dict(type="ResNet", depth=18,
                                    init_cfg=dict(type="Pretrained", checkpoint=checkpoint)))


def test_a_cached_file_is_loaded_and_kept(hub):
    cache = hub / "checkpoints" / "resnet18-f37072fd.pth"
    cache.parent.mkdir(parents=True)
    torch.save({"conv1.weight": torch.ones(1)}, cache)
    model = _model("torchvision://resnet18")
    (status,) = preflight(model, "auto")
    assert status.loaded and status.cache == cache and status.reason is None
    assert model.backbone.init_cfg.checkpoint == "torchvision://resnet18"


def test_unreachable_weights_are_dropped_with_the_reason_or_refused(hub):
    model = _model(UNREACHABLE)
    (status,) = preflight(model, "auto")
    assert not status.loaded and "Connection refused" in status.reason
    assert status.cache == hub / "checkpoints" / "resnet18.pth" and model.backbone.init_cfg is None
    with pytest.raises(OtxlikeError, match=r"put the file at .*checkpoints/resnet18.pth \(from http://127.0.0.1:9"):
        preflight(_model(UNREACHABLE), "required")
    model = _model("/nonexistent/weights.pth")
    (status,) = preflight(model, "none")
    assert not status.loaded and status.reason is None and model.backbone.init_cfg is None


@pytest.fixture
def tiny(tmp_path):
    ds = write_digits_classification(tmp_path / "digits", limit=3)
    return Workspace.load(create_workspace("classification", tmp_path / "ws", train_root=ds.train_root,
                                           val_root=ds.val_root).root)


@pytest.mark.slow
def test_the_template_starts_from_the_file_in_the_cache(tiny, hub):
    """The classification template names mmpretrain's ResNet-18 zoo URL; a checkpoint made here and
    put at its cache path is what the backbone starts from (a learning rate of 1e-12 and frozen
    BatchNorm statistics keep it there for one epoch)."""
    from mmpretrain.models import ResNet

    torch.manual_seed(123)
    source = ResNet(depth=18, out_indices=(3,)).state_dict()
    _, cache = resolve(tiny.config().model.backbone.init_cfg.checkpoint)
    cache.parent.mkdir(parents=True)
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in source.items()}}, cache)
    run = train(tiny, epochs=1, hparams=HParams(lr=1e-12, cfg_options=("model.backbone.norm_eval=True",)))
    assert [w.loaded for w in run.weights] == [True]
    from otxlike.engine.checkpoints import checkpoint_loading

    with checkpoint_loading():
        trained = torch.load(run.checkpoint, map_location="cpu")["state_dict"]
    for key in ("conv1.weight", "layer4.1.conv2.weight", "layer2.0.bn1.running_mean"):
        assert torch.allclose(trained[f"backbone.{key}"], source[key], atol=1e-6), key
    assert json.loads((run.run_dir / "metrics.json").read_text())["weights"] == \
        {"model.backbone": tiny.config().model.backbone.init_cfg.checkpoint}


@pytest.mark.slow
def test_unreachable_default_weights_warn_once_and_train_from_scratch(tiny, hub, cli):
    result = cli("train", "--epochs", "1", "--cfg-options", f"model.backbone.init_cfg.checkpoint={UNREACHABLE}",
                 cwd=tiny.root)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "warning" in line]
    assert len(warnings) == 1 and UNREACHABLE in warnings[0] and "training from random weights" in warnings[0]
    assert str(hub / "checkpoints" / "resnet18.pth") in warnings[0]
    run_dir = tiny.outputs / "latest"
    assert json.loads((run_dir / "metrics.json").read_text())["weights"] == {"model.backbone": None}
    assert yaml.safe_load((run_dir / "hparams.yaml").read_text())["weights"][0]["loaded"] is False


def test_required_weights_fail_before_training(tiny, hub, cli):
    from tests.conftest import snapshot

    before = snapshot(tiny.root)
    result = cli("train", "--weights", "required", "--cfg-options",
                 f"model.backbone.init_cfg.checkpoint={UNREACHABLE}", cwd=tiny.root)
    assert result.exit_code == 2 and "cannot load the weights http://127.0.0.1:9/resnet18.pth" in result.output
    assert snapshot(tiny.root) == before


@pytest.mark.parametrize("package, config, library", [
    ("mmdet", "_base_/models/retinanet_r50_fpn.py", "mmdet"),
    ("mmdet", "regnet/faster-rcnn_regnetx-3.2GF_fpn_1x_coco.py", "mmdet"),
    ("mmseg", "_base_/models/fpn_r50.py", "mmseg"),
])
def test_published_weights_are_the_ones_the_library_configs_load(package, config, library):
    """The libraries' own configs name the ImageNet checkpoint of their backbone (``init_cfg`` of
    the backbone, or mmseg's ``model.pretrained``): ``build --backbone`` picks the same one."""
    import importlib
    from pathlib import Path

    from mmengine.config import Config

    from otxlike.catalog.lookup import get_backbone, provider

    root = Path(importlib.import_module(package).__file__).parent / ".mim" / "configs"
    model = Config.fromfile(str(root / config)).model
    backbone = model.backbone.to_dict()
    expected = (backbone.get("init_cfg") or {}).get("checkpoint") or model.get("pretrained")
    spec = get_backbone(f"{library}.{backbone.pop('type')}")
    assert provider(library).pretrained(spec, backbone)["checkpoint"] == expected


def test_find_says_which_backbones_have_weights(cli):
    doc = json.loads(cli("find", "--backbone", "mmdet,torchvision", "--json").output)
    weights = {b["name"]: b["weights"] for b in doc["backbones"]}
    assert weights["mmdet.ResNet"] == "torchvision://resnet18" and weights["mmdet.HRNet"] is None
    assert weights["torchvision.resnet18"] == "torchvision://resnet18.default"
    table = cli("find", "--backbone", "mmdet").output
    assert "Weights" in next(line for line in table.splitlines() if "Index" in line)


def test_swapped_torchvision_backbone_starts_from_torchvision_weights(workspace, hub):
    """``build --backbone torchvision.resnet18`` names torchvision's DEFAULT weights; the wrapper
    loads the file torchvision's URL caches to into the feature extractor."""
    import torchvision
    from mmengine.config import Config
    from mmengine.registry import MODELS
    from torchvision.models import ResNet18_Weights

    from otxlike.configedit.backbone import swap_backbone

    result = swap_backbone(workspace, "torchvision.resnet18")
    init = Config.fromfile(str(workspace.model_py)).model.backbone.init_cfg
    assert init.checkpoint == "torchvision://resnet18.default" == result.weights["checkpoint"]
    reference = torchvision.models.resnet18()
    cache = hub / "checkpoints" / ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[-1]
    cache.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cache)
    module = MODELS.build(Config.fromfile(str(workspace.model_py)).model.backbone)
    module.init_weights()
    loaded = dict(module.body.named_parameters())  # create_feature_extractor keeps torchvision's names
    assert torch.equal(loaded["layer3.1.conv1.weight"], reference.layer3[1].conv1.weight)


def test_another_workspaces_checkpoint_starts_a_backbone(workspace, tmp_path, cli):
    """A checkpoint written by otxlike train holds the whole model (``backbone.*``, ``head.*``):
    its backbone part is taken (``prefix='backbone'``); weights of another backbone are refused."""
    from mmengine.config import Config
    from mmpretrain.models import ResNet

    from tests.conftest import snapshot

    path = tmp_path / "best_accuracy_top1_epoch_5.pth"
    state = {f"backbone.{k}": v for k, v in ResNet(depth=18, out_indices=(3,)).state_dict().items()}
    torch.save({"state_dict": {**state, "head.fc.weight": torch.zeros(10, 512)}, "meta": {}}, path)
    result = cli("build", "--backbone", "mmdet.ResNet", "--weights", path, cwd=workspace.root)
    assert result.exit_code == 0, result.output
    init = Config.fromfile(str(workspace.model_py)).model.backbone.init_cfg
    assert (init.checkpoint, init.prefix) == (str(path), "backbone")
    before = snapshot(workspace.root)
    result = cli("build", "--backbone", "mmdet.RegNet", "--weights", path, cwd=workspace.root)
    assert result.exit_code == 2 and "hold none of the backbone's" in result.output
    result = cli("build", "--weights", tmp_path / "missing.pth", cwd=workspace.root)
    assert result.exit_code == 2 and "cannot load the weights" in result.output
    assert snapshot(workspace.root) == before
