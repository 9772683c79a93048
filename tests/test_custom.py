"""Custom backbones and heads: registration, the contract, find, swap, train and eval."""

import shutil
import textwrap
from pathlib import Path

import pytest
import torch
import torchvision

import otxlike
from otxlike.configedit.backbone import swap_backbone
from otxlike.configedit.data import create_workspace
from otxlike.configedit.head import swap_head
from otxlike.engine.evaluate import evaluate
from otxlike.engine.train import train
from otxlike.errors import OtxlikeError
from otxlike.workspace.workspace import Workspace
from tests.conftest import snapshot

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


def _with_file(ws: Workspace, name: str, text: str | None = None) -> Workspace:
    """Put a custom module into the workspace (the docs example of that name by default)."""
    if text is None:
        shutil.copy(EXAMPLES / name, ws.root / name)
    else:
        (ws.root / name).write_text(textwrap.dedent(text))
    return Workspace.load(ws.root)


def test_sequential_backbone_cuts_squeezenet_at_each_resolution_drop():
    backbone = otxlike.SequentialBackbone.from_layers(torchvision.models.squeezenet1_1().features)
    # SqueezeNet 1.1 (torchvision/models/squeezenet.py): a 64-channel stride-2 conv, then Fire
    # modules of 128, 256 and 384..512 output channels after each stride-2 max pool.
    assert backbone.out_channels == (64, 128, 256, 512)
    assert backbone.strides == (2, 4, 8, 16)
    outs = backbone(torch.zeros(2, 3, 96, 96))
    assert [o.shape[1] for o in outs] == [64, 128, 256, 512]
    assert [o.shape[0] for o in outs] == [2] * 4


def _swap_squeezenet(workspace, cli) -> Workspace:
    ws = _with_file(workspace, "custom_backbones.py")
    listed = cli("find", "--backbone", "custom", "--workspace", ws.root)
    assert listed.exit_code == 0, listed.output
    assert "custom.squeezenet1_0" in listed.output and "custom.squeezenet1_1" in listed.output
    assert "0 of 2 were checked in the compatibility matrix; empty Tasks and Fits columns mean not checked" \
        in " ".join(listed.output.split())
    result = swap_backbone(ws, "custom.squeezenet1_1")
    assert result.shapes.channels[-1] == 512
    text = ws.model_py.read_text()
    assert "type='otxlike.CustomBackbone'" in text and "imports=['custom_backbones']" in text
    assert "in_channels=512" in text
    return ws


def test_workspace_backbone_under_two_names_is_found_and_swapped(workspace, cli):
    _swap_squeezenet(workspace, cli)


@pytest.mark.slow
def test_workspace_backbone_trains_and_evaluates(workspace, cli):
    ws = _swap_squeezenet(workspace, cli)
    run = train(ws, epochs=1)
    assert run.checkpoint is not None and "accuracy/top1" in run.metrics
    assert "accuracy/top1" in evaluate(ws).metrics


@pytest.mark.slow
def test_workspace_backbone_trains_in_detection(tmp_path, canvases):
    ws = Workspace.load(create_workspace("detection", tmp_path / "ws", train_root=canvases.train_root,
                                         val_root=canvases.val_root).root)
    ws = _with_file(ws, "custom_backbones.py")
    result = swap_backbone(ws, "custom.squeezenet1_0")
    # SqueezeNet 1.0 stages: 96 ch @ 2, 256 @ 4 (after Fire 128, 128, 256), 512 @ 8 (Fire 256..512),
    # 512 @ 16. The template's FPN takes strides 4..32 from start_level 1: stride 2 is dropped,
    # 4/8/16 are kept, and the FPN makes stride 32 itself with its extra levels.
    assert result.shapes.strides == (4, 8, 16)
    assert result.edits["neck"]["in_channels"] == [256, 512, 512]
    train(ws, epochs=1)
    assert "coco/bbox_mAP" in evaluate(ws).metrics


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """An installed distribution exposing a backbone through the otxlike.backbones entry point.

    A ``*.dist-info`` folder on sys.path is what pip leaves behind, and what importlib.metadata
    reads entry points from.
    """
    site = tmp_path / "site"
    pkg = site / "otxlike_squeeze_plugin"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        import torchvision
        import otxlike

        @otxlike.register_backbone("plugin_squeezenet")
        def get_backbone(model_name, pretrained=None, width=None, **kwargs):
            return otxlike.SequentialBackbone.from_layers(torchvision.models.squeezenet1_1().features)
    """))
    info = site / "otxlike_squeeze_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: otxlike-squeeze-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[otxlike.backbones]\nsqueeze = otxlike_squeeze_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    return "custom.plugin_squeezenet"


def _swap_plugin(plugin, workspace, cli) -> None:
    listed = cli("find", "--backbone", "custom", "--json")
    assert listed.exit_code == 0, listed.output
    import json

    backbone = next(b for b in json.loads(listed.output)["backbones"] if b["name"] == plugin)
    assert [a["name"] for a in backbone["args"]] == ["pretrained", "width"]
    swap_backbone(workspace, plugin)
    assert "imports=['otxlike_squeeze_plugin']" in workspace.model_py.read_text()


def test_entry_point_backbone_is_listed_and_swapped(plugin, workspace, cli):
    _swap_plugin(plugin, workspace, cli)


@pytest.mark.slow
def test_entry_point_backbone_trains(plugin, workspace, cli):
    _swap_plugin(plugin, workspace, cli)
    assert train(workspace, epochs=1).checkpoint is not None
    assert "accuracy/top1" in evaluate(workspace).metrics


@pytest.mark.slow
@pytest.mark.exhaustive
def test_entry_point_backbone_trains_in_detection(plugin, tmp_path, canvases):
    ws = Workspace.load(create_workspace("detection", tmp_path / "ws", train_root=canvases.train_root,
                                         val_root=canvases.val_root).root)
    result = swap_backbone(ws, plugin)
    assert result.shapes.strides == (4, 8, 16)  # SqueezeNet 1.1 at 128x128, stride 2 dropped
    train(ws, epochs=1)
    assert "coco/bbox_mAP" in evaluate(ws).metrics


def test_module_class_registered_as_backbone(workspace, cli):
    ws = _with_file(workspace, "custom_backbones.py", """
        import otxlike
        from torch import nn

        @otxlike.register_backbone("tiny_convnet")
        class TinyConvNet(otxlike.SequentialBackbone):
            def __init__(self, width=8):
                super().__init__([nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.ReLU()),
                                  nn.Sequential(nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU())])
    """)
    listed = cli("find", "--backbone", "custom.tiny_convnet", "--workspace", ws.root)
    assert listed.exit_code == 0, listed.output
    assert "width" in listed.output and "16 ch @ stride 4" in listed.output
    (ws.root / "bb.yaml").write_text("backbone: {type: custom.tiny_convnet, width: 4}\n")
    result = swap_backbone(ws, str(ws.root / "bb.yaml"))
    assert result.shapes.channels == (4, 8) and result.shapes.strides == (2, 4)
    assert "width=4" in ws.model_py.read_text()


def test_same_name_twice_names_both_places(workspace):
    body = """
        import otxlike
        @otxlike.register_backbone("twin")
        def get_backbone(model_name, pretrained=None):
            raise NotImplementedError
    """
    _with_file(workspace, "first.py", body)
    ws = _with_file(workspace, "second.py", body)
    (ws.root / "workspace.yaml").write_text((ws.root / "workspace.yaml").read_text() +
                                            "custom_modules: [first.py, second.py]\n")
    with pytest.raises(OtxlikeError, match=r"'custom.twin' is registered twice: at .*first.py:3 and at .*second.py:3"):
        Workspace.load(ws.root).load_custom_modules()


def test_backbone_breaking_the_contract_is_refused_and_nothing_changes(workspace):
    ws = _with_file(workspace, "custom_backbones.py", """
        import otxlike
        from torch import nn

        @otxlike.register_backbone("plain_conv")
        def get_backbone(model_name, pretrained=None):
            return nn.Conv2d(3, 8, 3, stride=2)  # no out_channels / strides, one tensor
    """)
    before = snapshot(ws.root)
    with pytest.raises(OtxlikeError, match="does not report out_channels and strides"):
        swap_backbone(ws, "custom.plain_conv")
    assert snapshot(ws.root) == before


def test_same_file_in_another_workspace_replaces_its_registrations(tmp_path, digits):
    # two workspaces with their own copy of the files, used one after the other in one process
    for name in ("first", "second"):
        ws = Workspace.load(create_workspace("classification", tmp_path / name, train_root=digits.train_root,
                                             val_root=digits.val_root).root)
        _with_file(ws, "custom_backbones.py")
        ws = _with_file(ws, "cosine_head.py")
        (ws.root / "workspace.yaml").write_text((ws.root / "workspace.yaml").read_text() +
                                                "custom_modules: [custom_backbones.py, cosine_head.py]\n")
        Workspace.load(ws.root).load_custom_modules()
        from otxlike.models.custom import head_module, lookup

        assert lookup("squeezenet1_1").where.startswith(str(ws.root))
        assert head_module("CosineClsHead") == "cosine_head"


def test_head_swap_outside_classification_is_refused(tmp_path, canvases):
    ws = Workspace.load(create_workspace("detection", tmp_path / "det", train_root=canvases.train_root,
                                         val_root=canvases.val_root).root)
    with pytest.raises(OtxlikeError, match="--head swaps a classification head"):
        swap_head(ws, "LinearClsHead")


@pytest.mark.slow
def test_cosine_head_trains_on_digits(tmp_path):
    from otxlike.data.digits import write_digits_classification

    data = write_digits_classification(tmp_path / "digits", limit=60)
    ws = Workspace.load(create_workspace("classification", tmp_path / "ws", train_root=data.train_root,
                                         val_root=data.val_root).root)
    ws = _with_file(ws, "cosine_head.py")
    (ws.root / "workspace.yaml").write_text((ws.root / "workspace.yaml").read_text() + "custom_modules: [cosine_head.py]\n")
    result = swap_head(Workspace.load(ws.root), "custom.CosineClsHead")
    assert result.values["in_channels"] == 512 and result.values["num_classes"] == 10
    assert "type='otxlike.CosineClsHead'" in ws.model_py.read_text()
    # the head.yaml round trip: a changed scale is applied
    head_yaml = ws.root / "head.yaml"
    head_yaml.write_text(head_yaml.read_text().replace("scale: 16.0", "scale: 10.0"))
    assert swap_head(ws, str(head_yaml)).values["scale"] == 10.0
    run = train(ws, epochs=4)
    assert run.metrics["accuracy/top1"] > 50  # chance is 10 %


def test_listing_a_module_never_hides_custom_backbones_py(workspace, cli):
    """docs/custom.md: custom_backbones.py, then custom_modules: [cosine_head.py] in workspace.yaml."""
    ws = _with_file(workspace, "custom_backbones.py")
    shutil.copy(EXAMPLES / "cosine_head.py", ws.root / "cosine_head.py")
    with open(ws.root / "workspace.yaml", "a") as f:
        f.write("custom_modules: [cosine_head.py]\n")
    listed = cli("find", "--backbone", "custom", "--workspace", ws.root)
    assert listed.exit_code == 0 and "custom.squeezenet1_1" in listed.output, listed.output


def test_the_stock_head_by_its_bare_name_and_back_to_swapping_backbones(workspace, cli):
    """build --help's example (LinearClsHead) works in a fresh workspace, and a scoped name
    (mmpretrain.LinearClsHead) does not stop later backbone swaps."""
    result = cli("build", "--head", "LinearClsHead", cwd=workspace.root)
    assert result.exit_code == 0, result.output
    assert cli("build", "--head", "mmpretrain.LinearClsHead", cwd=workspace.root).exit_code == 0
    result = cli("build", "--backbone", "torchvision.resnet18", cwd=workspace.root)
    assert result.exit_code == 0 and "model.head.in_channels = 512" in result.output, result.output


def test_print_in_a_custom_module_does_not_break_find_json(workspace, cli):
    """A print() at import of the user's module goes to stderr; --json's stdout stays one document."""
    import json

    text = (EXAMPLES / "custom_backbones.py").read_text() + "\nprint('loading my backbones')\n"
    ws = _with_file(workspace, "custom_backbones.py", text)
    result = cli("find", "--backbone", "custom", "--json", "--workspace", ws.root)
    assert result.exit_code == 0, result.output
    names = [b["name"] for b in json.loads(result.stdout)["backbones"]]
    assert "custom.squeezenet1_1" in names
    assert "loading my backbones" in result.stderr
