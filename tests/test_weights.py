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


def _put_in_hf_cache(repo: str, filename: str, state: dict):
    """Write ``state`` where huggingface_hub's ``hf_hub_download`` finds a file of ``repo`` at its
    ``main`` revision: ``<HF_HUB_CACHE>/models--<org>--<name>/{refs/main, snapshots/<commit>/<file>}``
    (huggingface_hub's documented cache layout)."""
    import os
    from pathlib import Path

    from safetensors.torch import save_file

    folder = Path(os.environ["HF_HUB_CACHE"]) / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "snapshots" / commit / filename))
    return folder


def test_swapped_timm_backbone_starts_from_timms_published_weights(workspace):
    """``build --backbone timm.resnet18`` names timm's default pretrained tag; offline it is read
    from the Hugging Face cache folder timm's hub functions use, mapped by timm onto the
    ``features_only`` network, and checked before a run."""
    import copy
    import shutil

    import timm
    from mmengine.config import Config
    from mmengine.registry import MODELS

    from otxlike.configedit.backbone import swap_backbone

    tag = timm.create_model("resnet18").pretrained_cfg["tag"]  # timm's default weights of resnet18
    swap_backbone(workspace, "timm.resnet18")
    cfg = Config.fromfile(str(workspace.model_py)).model
    assert cfg.backbone.init_cfg.checkpoint == f"timm://resnet18.{tag}"

    (status,) = preflight(copy.deepcopy(cfg), "auto")  # nothing in the cache, no network
    assert not status.loaded and f"hf download timm/resnet18.{tag}" in status.fetch
    assert status.url == f"https://huggingface.co/timm/resnet18.{tag}"

    torch.manual_seed(7)
    reference = timm.create_model("resnet18")  # the whole classifier, as timm publishes it
    folder = _put_in_hf_cache(f"timm/resnet18.{tag}", "model.safetensors", reference.state_dict())
    try:
        (status,) = preflight(copy.deepcopy(cfg), "auto")
        assert status.loaded and status.cache == folder
        module = MODELS.build(cfg.backbone)
        module.init_weights()
        assert torch.equal(module.body.layer3[1].conv1.weight, reference.layer3[1].conv1.weight)
        assert torch.equal(module.body.bn1.running_var, reference.bn1.running_var)
    finally:
        shutil.rmtree(folder)


def test_a_timm_checkpoint_given_by_path_starts_a_timm_backbone(workspace, tmp_path):
    """``--weights PATH`` with a checkpoint of the whole timm model: timm maps it onto the
    ``features_only`` network; the backbone's levels equal the reference model's own intermediate
    features (``forward_intermediates``); a checkpoint of another model is refused at build."""
    import timm
    from mmengine.config import Config
    from mmengine.registry import MODELS

    from otxlike.configedit.backbone import swap_backbone

    torch.manual_seed(3)
    reference = timm.create_model("convnext_atto").eval()
    path = tmp_path / "convnext_atto.pth"
    torch.save(reference.state_dict(), path)
    result = swap_backbone(workspace, "timm.convnext_atto", weights=str(path))
    assert result.weights == {"type": "Pretrained", "checkpoint": str(path)}
    module = MODELS.build(Config.fromfile(str(workspace.model_py)).model.backbone)
    module.init_weights()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = module.eval()(x)
        levels = reference.forward_intermediates(x, intermediates_only=True)
    assert [o.shape for o in ours] == [f.shape for f in levels][-len(ours):]
    assert all(torch.allclose(o, f, atol=1e-5) for o, f in zip(ours, levels[-len(ours):]))

    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(OtxlikeError, match="hold none of the backbone's"):
        swap_backbone(workspace, "timm.convnext_atto", weights=str(tmp_path / "resnet18.pth"))


ZOO_SAMPLE = ("ResNet", "MobileNetV2", "ConvNeXt", "EfficientNet", "RegNet", "ShuffleNetV2", "VGG")


@pytest.mark.parametrize("name", ZOO_SAMPLE)
def test_mmpretrain_zoo_weights_fit_the_backbone_build_writes(name):
    """``build --backbone mmpretrain.X`` names the weights of a model of mmpretrain's zoo: that
    model's backbone, built from its own config file, has every tensor of ours under the same name
    and shape, and the URL is the one its metafile publishes."""
    from pathlib import Path

    import mmpretrain
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from otxlike.catalog.lookup import get_backbone, provider
    from otxlike.catalog.values import default_values, model_values

    spec = get_backbone(f"mmpretrain.{name}")
    values, _ = default_values(spec)
    init = provider("mmpretrain").pretrained(spec, values)
    assert init["prefix"] == "backbone"
    configs = Path(mmpretrain.__file__).parent / ".mim" / "configs"
    published = {}
    for metafile in configs.glob("*/metafile.yml"):
        for model in yaml.safe_load(metafile.read_text()).get("Models", []):
            if model.get("Weights"):
                published[model["Weights"]] = configs.parent / model["Config"]
    assert init["checkpoint"] in published
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        theirs = MODELS.build(Config.fromfile(str(published[init["checkpoint"]])).model.backbone).state_dict()
        ours = MODELS.build({"type": name, **model_values(spec, values)}).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: theirs[k].shape for k in ours if k in theirs}


def test_swapped_mmpretrain_backbone_starts_from_the_zoo_checkpoint(workspace, hub):
    """The zoo checkpoint holds a whole classifier (``backbone.*``, ``head.*``); put where torch.hub
    caches its URL, its backbone part is what the swapped backbone starts from."""
    import os
    from urllib.parse import urlparse

    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from otxlike.configedit.backbone import swap_backbone

    result = swap_backbone(workspace, "mmpretrain.MobileNetV2")
    url = result.weights["checkpoint"]
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        torch.manual_seed(5)
        reference = MODELS.build(dict(type="MobileNetV2", widen_factor=1.0))
        cache = hub / "checkpoints" / os.path.basename(urlparse(url).path)  # torch.hub's cache file name
        cache.parent.mkdir(parents=True)
        torch.save({"state_dict": {**{f"backbone.{k}": v for k, v in reference.state_dict().items()},
                                   "head.fc.weight": torch.zeros(1000, 1280)}}, cache)
        model = Config.fromfile(str(workspace.model_py)).model
        (status,) = preflight(model, "required")
        assert status.loaded and status.cache == cache
        module = MODELS.build(model.backbone)
    module.init_weights()
    assert torch.equal(module.conv1.conv.weight, reference.conv1.conv.weight)
    assert torch.equal(module.layer7[0].conv[1].conv.weight, reference.layer7[0].conv[1].conv.weight)


def _detection_model(cfg, hp, weights):
    """The ATSS model mmdet builds from ``cfg`` after the weights check and the start switch."""
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS

    from otxlike.engine.hparams import apply_start

    start = apply_start(cfg, hp, weights)
    with DefaultScope.overwrite_default_scope("mmdet"):
        model = MODELS.build(cfg.model)
    model.train()
    return start, model


def test_pretrained_and_scratch_starts_switch_frozen_stages(tmp_path, canvases, hub):
    """The detection template freezes the stem and stage 1 when its backbone starts from ImageNet
    weights (mmdet's configs); from random weights its ``from_scratch`` unfreezes them (mmdet's
    configs/scratch), unless a flag sets the key. Read back from the module mmdet builds: which
    parameters train."""
    import copy

    from torchvision.models import ResNet18_Weights, resnet18

    from otxlike.engine.hparams import apply

    ws = Workspace.load(create_workspace("detection", tmp_path / "ws", train_root=canvases.train_root,
                                         val_root=canvases.val_root).root)
    base = ws.config()
    cfg = copy.deepcopy(base)
    hp = HParams()
    apply(cfg, hp, ws.task_spec, "mmdet")
    start, model = _detection_model(cfg, hp, preflight(cfg.model, "auto"))  # offline: nothing in the cache
    assert start == {"backbone": "from scratch", "from_scratch": {"model.backbone.frozen_stages": "default"}}
    assert "frozen_stages" not in cfg.model.backbone  # mmdet's ResNet default: -1, "not freezing any parameters"
    assert model.backbone.frozen_stages == -1
    assert model.backbone.conv1.weight.requires_grad and model.backbone.layer1[0].conv1.weight.requires_grad

    cache = hub / "checkpoints" / ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    cache.parent.mkdir(parents=True, exist_ok=True)  # the failed download above made the folder
    torch.save(resnet18().state_dict(), cache)
    cfg = copy.deepcopy(base)
    apply(cfg, hp, ws.task_spec, "mmdet")
    start, model = _detection_model(cfg, hp, preflight(cfg.model, "auto"))
    assert start == {"backbone": "pretrained", "from_scratch": {}}
    assert not model.backbone.conv1.weight.requires_grad and not model.backbone.layer1[0].conv1.weight.requires_grad
    assert model.backbone.layer2[0].conv1.weight.requires_grad and model.backbone.layer2[0].bn1.training

    cfg = copy.deepcopy(base)
    hp = HParams(weights="none", cfg_options=("model.backbone.frozen_stages=2",))
    apply(cfg, hp, ws.task_spec, "mmdet")
    start, model = _detection_model(cfg, hp, preflight(cfg.model, "none"))
    assert start == {"backbone": "from scratch", "from_scratch": {}}  # the flag's key is the user's
    assert not model.backbone.layer2[0].conv1.weight.requires_grad and model.backbone.layer3[0].conv1.weight.requires_grad


def test_from_scratch_skips_keys_a_swapped_backbone_does_not_take(tmp_path, canvases):
    from otxlike.configedit.backbone import swap_backbone
    from otxlike.engine.hparams import apply_start

    ws = Workspace.load(create_workspace("detection", tmp_path / "ws", train_root=canvases.train_root,
                                         val_root=canvases.val_root).root)
    swap_backbone(ws, "mmdet.RegNet")  # backbone_defaults are written, frozen_stages=1 too
    cfg = ws.config()
    assert (cfg.model.backbone.norm_eval, cfg.model.backbone.frozen_stages) == (False, 1)
    assert apply_start(cfg, HParams(), [])["from_scratch"] == {"model.backbone.frozen_stages": "default"}
    swap_backbone(ws, "torchvision.resnet18")
    cfg = ws.config()
    assert apply_start(cfg, HParams(), [])["from_scratch"] == {}
    cfg.from_scratch = ["model.backbone.norm_eval"]
    with pytest.raises(OtxlikeError, match="from_scratch must be a dict"):
        apply_start(cfg, HParams(), [])


def test_from_scratch_default_gives_a_swapped_backbone_its_own_unfrozen_value(tmp_path, canvases):
    """mmpretrain's EfficientNet takes ``frozen_stages`` in ``range(0, 8)``, 0 meaning nothing frozen
    (its docstring, ``mmpretrain/models/backbones/efficientnet.py``), and refuses mmdet's -1: the
    templates' ``from_scratch`` value ``'default'`` drops the key, so the swapped backbone builds
    and every parameter trains (``make compat`` failed it in detection before: "frozen_stages must
    be in range(0, 8). But received -1")."""
    from otxlike.configedit.backbone import swap_backbone

    ws = Workspace.load(create_workspace("detection", tmp_path / "ws", train_root=canvases.train_root,
                                         val_root=canvases.val_root).root)
    swap_backbone(ws, "mmpretrain.EfficientNet")
    cfg = ws.config()
    assert cfg.model.backbone.frozen_stages == 1  # the template's pretrained setting, written by the swap
    start, model = _detection_model(cfg, HParams(weights="none"), [])
    assert start["from_scratch"] == {"model.backbone.frozen_stages": "default"}
    assert "frozen_stages" not in cfg.model.backbone
    assert model.backbone.frozen_stages == 0
    assert all(p.requires_grad for p in model.backbone.parameters())
    assert all(m.training for m in model.backbone.modules())
