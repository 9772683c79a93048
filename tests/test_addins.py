"""Add-ins (issue 16, docs/addins.md): the one-line syntax, the built-ins on real modules, freezing,
``build --addin`` / ``--addin none``, ``find --addins`` / ``--modules``, and (slow) a LoRA workspace
trained and evaluated under mmengine's Runner."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from otxlike.errors import OtxlikeError
from otxlike.models.addin_syntax import AddinSyntaxError, Point, parse_line
from tests.conftest import snapshot

# -- the syntax -----------------------------------------------------------------------------------

SEED_FORMS = {
    # the three lines (ZhiJian's README)
    "(MLPAddin.adapt_input): ...->{inout1}(fc2)->...": [Point("inout", 1, "fc2", "input")],
    "(MLPAddin.adapt_output): ...->(fc1){inout1}->...": [Point("inout", 1, "fc1", "output")],
    "(MLPAddin.adapt_across_input): ...->(fc1){in1}->...->{out1}(fc3)->...":
        [Point("in", 1, "fc1", "output"), Point("out", 1, "fc3", "input")],
    # the cross-layer variants: each end on the input or the output of its module
    "(MLPAddin.adapt_across_input): ...->{in1}(fc1)->...->{out1}(fc3)->...":
        [Point("in", 1, "fc1", "input"), Point("out", 1, "fc3", "input")],
    "(MLPAddin.adapt_across_input): ...->(fc1){in1}->...->(fc3){out1}->...":
        [Point("in", 1, "fc1", "output"), Point("out", 1, "fc3", "output")],
    "(MLPAddin.adapt_across_input): ...->{in1}(fc1)->...->(fc3){out1}->...":
        [Point("in", 1, "fc1", "input"), Point("out", 1, "fc3", "output")],
    "(MLPAddin.adapt_across_input): ...->{in1}(fc2){out1}->...": [Point("in", 1, "fc2", "input"),
                                                               Point("out", 1, "fc2", "output")],
    "(MLPAddin.adapt_across_input): ...->(a){in1}->...->(b){in2}->...->{out1}(c)->...->{out2}(d)->...":
        [Point("in", 1, "a", "output"), Point("in", 2, "b", "output"), Point("out", 1, "c", "input"),
         Point("out", 2, "d", "input")],
    # several points of one line, print(model)'s index spelling
    "(LoRA.adapt_output): ...->(block[3].attn.qkv){inout1}->...->(layer4.0.conv2){inout2}->...":
        [Point("inout", 1, "block.3.attn.qkv", "output"), Point("inout", 2, "layer4.0.conv2", "output")],
}


@pytest.mark.parametrize("text", list(SEED_FORMS))
def test_each_form_parses_and_round_trips(text):
    line = parse_line(text)
    assert list(line.points) == SEED_FORMS[text]
    assert parse_line(line.text()) == line
    assert parse_line(line.text()).text() == line.text()


def test_arguments_whole_module_lines_and_spaces():
    line = parse_line("  (LoRA(r=8, alpha=16.0).adapt_output) :  ... -> (backbone.layer4.0.conv1){inout1} -> ...")
    assert (line.name, line.args, line.method) == ("LoRA", {"r": 8, "alpha": 16.0}, "adapt_output")
    assert line.text() == "(LoRA(r=8, alpha=16.0).adapt_output): ...->(backbone.layer4.0.conv1){inout1}->..."
    whole = parse_line("(PartialK(k=2)): ...->(backbone)->...")
    assert (whole.method, whole.modules, whole.points, whole.args) == (None, ("backbone",), (), {"k": 2})
    assert parse_line(whole.text()) == whole


ERRORS = [
    # (line, column of the mistake, words of the message)
    ("(LoRA.adapt_output): ..->(fc){inout1}->...", 22, "expected '...'"),
    ("(LoRA.adapt_output): ...->(fc){inout1}->..", 41, "'...' is three dots"),
    ("(LoRA.adapt_output): abc->(fc){inout1}->...", 22, "expected '...'"),
    ("(LoRA.adapt_output): ...->(fc1){inout1}->(fc2)->...", 42, "put '...' between two modules"),
    ("(LoRA.adapt_output) ...->(fc){inout1}->...", 21, "expected ':'"),
    ("LoRA.adapt_output: ...->(fc){inout1}->...", 1, "expected '('"),
    ("(LoRA.adapt_sideways): ...->(fc){inout1}->...", 7, "unknown entry function"),
    ("(LoRA(4).adapt_output): ...->(fc){inout1}->...", 7, "name=value"),
    ("(LoRA.adapt_output): ...->(fc){inoutx}->...", 31, "is not inoutN"),
    ("(LoRA.adapt_output): ...->(fc){inout1->...", 31, "'}' missing"),
    ("(LoRA.adapt_output): ...->(fc{inout1}->...", 27, "')' missing after a module path"),
    ("(LoRA.adapt_output): ...->(fc-1){inout1}->...", 30, "'-' cannot be in a module path"),
    ("(LoRA.adapt_output): ...->(a){inout1}->...->(b){inout1}->...", 48, "appears twice"),
    ("(A.adapt_across_input): ...->(fc1){in1}->...", 35, "has no {out1}"),
    ("(A.adapt_across_input): ...->{out1}(fc3)->...", 30, "has no {in1}"),
    ("(A.adapt_across_input): ...->{out1}(a)->...->(b){in1}->...", 49, "comes after its {out1}"),
    ("(A.adapt_across_input): ...->(a){inout1}->...", 33, "single point"),
    ("(A.adapt_output): ...->(a){in1}->...->{out1}(b)->...", 27, "half of a pair"),
    ("(A.adapt_output): ...->{inout1}(fc)->...", 24, "adapt_output runs after a module"),
    ("(A.adapt_input): ...->(fc){inout1}->...", 27, "adapt_input runs before a module"),
    ("(A.adapt_output): ...->(a){inout1}->...->(b)->...", 42, "has no tag"),
    ("(BitFit): ...->(backbone){inout1}->...", 26, "names no entry function"),
    ("(LoRA.adapt_output): ...", 1, "names no module"),
    ("(LoRA.adapt_output): ...->...->(fc){inout1}->...", 27, "two '...' in a row"),
]


@pytest.mark.parametrize("text,column,words", ERRORS)
def test_each_error_points_at_its_column(text, column, words):
    with pytest.raises(AddinSyntaxError) as info:
        parse_line(text)
    assert info.value.column == column, (info.value.message, text[column - 1:])
    assert words in info.value.message and f"column {column}" in info.value.message


# -- the built-ins on real modules ----------------------------------------------------------------


class Tiny(nn.Module):
    """A model with the parts add-ins name: a conv backbone and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        return self.head(self.backbone(x).mean((2, 3)))


def _tiny():
    torch.manual_seed(0)
    return Tiny()


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_lora_counts_freezing_and_merge():
    from otxlike.models.addins import attach, count_params, merge_lora

    model = _tiny()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    attach(model, ["(LoRA(r=2, alpha=4).adapt_output): ...->(backbone.3){inout1}->...",
                   "(LoRA(r=3).adapt_output): ...->(head){inout1}->..."])
    # Hu et al.: r * (in * kh * kw + out) for the conv, r * (in + out) for the linear layer
    lora = 2 * (8 * 3 * 3 + 16) + 3 * (16 + 5)
    assert count_params(model) == (lora, lora + sum(v.numel() for k, v in base.items() if "running" not in k
                                                    and "num_batches" not in k))
    assert _trainable(model) == {"addins.0_inout1.lora_A", "addins.0_inout1.lora_B", "addins.1_inout1.lora_A",
                                 "addins.1_inout1.lora_B"}  # the line on head froze the head too
    assert set(base) <= set(model.state_dict())  # base keys unchanged: Pretrained loading keeps working
    x = torch.randn(2, 3, 8, 8)
    model.eval()
    with torch.no_grad():
        plain = model(x)
        for a in model.addins.values():
            a.lora_B.normal_()
        adapted = model(x)
        assert not torch.allclose(plain, adapted)
        assert merge_lora(model) == 2 and len(model.addins) == 0
        merged = model(x)
    assert torch.allclose(adapted, merged, atol=1e-5)
    delta = model.backbone[3].weight - base["backbone.3.weight"]
    assert delta.abs().max() > 0


def test_adapter_ssf_and_across_layers_add_what_they_should():
    from otxlike.models.addins import attach, count_params

    model = _tiny().eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        plain = model(x)
    attach(model, ["(Adapter(dim=4).adapt_output): ...->(backbone.1){inout1}->...",
                   "(SSF.adapt_input): ...->{inout1}(head)->...",
                   "(Adapter(dim=2).adapt_across_input): ...->(backbone.0){in1}->...->{out1}(backbone.1)->..."])
    # Adapter: C*d + d + d*C + C; SSF: 2*C; the head was frozen by the SSF line
    assert count_params(model)[0] == (8 * 4 + 4 + 4 * 8 + 8) + 2 * 16 + (8 * 2 + 2 + 2 * 8 + 8)
    with torch.no_grad():
        model.addins["1_inout1"].gamma.fill_(1.0)
        model.addins["1_inout1"].beta.fill_(0.0)
        assert torch.allclose(model(x), plain, atol=1e-6)  # adapters start at zero, SSF at identity
        model.addins["1_inout1"].beta.fill_(1.0)
        assert torch.allclose(model(x), plain + model.head.weight.sum(1), atol=1e-5)


def test_whole_module_addins_open_what_they_say():
    from otxlike.models.addins import attach

    model = _tiny()
    attach(model, ["(BitFit): ...->(backbone)->..."])
    assert _trainable(model) == {"backbone.0.bias", "backbone.1.bias", "backbone.3.bias", "backbone.4.bias",
                                 "head.weight", "head.bias"}
    model = _tiny()
    attach(model, ["(PartialK(k=2)): ...->(backbone)->..."])  # children with parameters: 0, 1, 3, 4
    assert _trainable(model) == {"backbone.3.weight", "backbone.3.bias", "backbone.4.weight", "backbone.4.bias",
                                 "head.weight", "head.bias"}
    model = _tiny()
    attach(model, ["(LinearProbe): ...->(backbone)->..."])
    assert _trainable(model) == {"head.weight", "head.bias"}
    model.train()
    before = model.backbone[1].running_mean.clone()
    model(torch.randn(4, 3, 8, 8))
    assert torch.equal(model.backbone[1].running_mean, before)  # frozen norms stay in eval mode
    assert model.backbone[1].training is False


@pytest.mark.parametrize("lines,words", [
    (["(LoRA.adapt_output): ...->(backbone.1){inout1}->..."], "LoRA fits Linear or Conv2d layers; backbone.1 is a BatchNorm2d"),
    (["(LoRA.adapt_output): ...->(backbone.33){inout1}->..."], "no module 'backbone.33'"),
    (["(LoRA.adapt_output): ...->(head){inout1}->...", "(LoRA(r=2).adapt_output): ...->(head){inout1}->..."],
     "two LoRA add-ins on the output of head; they conflict"),
    (["(LinearProbe): ...->(backbone)->...", "(BitFit): ...->(backbone)->..."], "conflict"),
    (["(LoRA.adapt_input): ...->{inout1}(head)->..."], "LoRA has no adapt_input (it offers adapt_output)"),
    (["(LoRA(rank=2).adapt_output): ...->(head){inout1}->..."], "LoRA takes no argument rank"),
    (["(Lora.adapt_output): ...->(head){inout1}->..."], "did you mean LoRA"),
    (["(BitFit.adapt_output): ...->(head){inout1}->..."], "acts on a whole module"),
])
def test_attach_errors(lines, words):
    from otxlike.models.addins import attach

    with pytest.raises(OtxlikeError, match=None) as info:
        attach(_tiny(), lines)
    assert words in str(info.value)


def test_closest_paths_and_shape_mismatch():
    from otxlike.models.addins import attach

    with pytest.raises(OtxlikeError) as info:
        attach(_tiny(), ["(LoRA.adapt_output): ...->(backbone.4.conv){inout1}->..."])
    assert "closest: backbone.4" in info.value.hint
    model = _tiny()
    attach(model, ["(SSF.adapt_across_input): ...->(backbone.0){in1}->...->(backbone.3){out1}->..."])
    with pytest.raises(OtxlikeError, match=r"carried across layers has shape \(1, 8, 8, 8\), the point it is added "
                                           r"to \(1, 16, 4, 4\)"):
        model(torch.randn(1, 3, 8, 8))


def test_init_weights_keeps_addins_and_freezing():
    """mmengine's Runner calls init_weights after the model is built (runner.py ``_init_model_weights``):
    layer-typed init_cfg must not touch the add-ins, nor re-open frozen parameters."""
    from mmengine.model import BaseModule

    from otxlike.models.addins import attach

    class Model(BaseModule):
        def __init__(self):
            super().__init__(init_cfg=[dict(type="Kaiming", layer="Conv2d"), dict(type="Constant", layer="Linear",
                                                                                    val=0.5)])
            self.backbone = _tiny().backbone
            self.head = nn.Linear(16, 5)

    model = Model()
    attach(model, ["(LoRA.adapt_output): ...->(backbone.3){inout1}->..."])
    with torch.no_grad():
        model.addins["0_inout1"].lora_B.fill_(0.25)
    model.init_weights()
    assert torch.all(model.addins["0_inout1"].lora_B == 0.25)
    assert _trainable(model) == {"addins.0_inout1.lora_A", "addins.0_inout1.lora_B", "head.weight", "head.bias"}


# -- the workspace ---------------------------------------------------------------------------------

LORA = "(LoRA.adapt_output): ...->(backbone.layer4.0.conv1){inout1}->..."


def test_build_addin_writes_the_list_and_none_removes_it(cli, workspace):
    original = workspace.model_py.read_text()
    result = cli("build", "-w", workspace.root, "--addin", LORA,
                 "--addin", "(SSF.adapt_input): ...->{inout1}(head.fc)->...")
    assert result.exit_code == 0, result.output
    text = workspace.model_py.read_text()
    assert f"addins = [\n    '{LORA}',\n    '(SSF.adapt_input): ...->{{inout1}}(head.fc)->...',\n]" in text
    # LoRA: 4 * (256 * 3 * 3 + 512); SSF: 2 * 512; the head is frozen by the SSF line
    assert f"Trainable/total parameters: 0.01M" in result.output
    from otxlike.configedit.source import ConfigSource

    assert ConfigSource(text).literal(("addins",)) == [LORA, "(SSF.adapt_input): ...->{inout1}(head.fc)->..."]
    again = cli("build", "-w", workspace.root, "--addin", LORA)
    assert again.exit_code == 0 and "already in model.py" in again.output
    assert workspace.model_py.read_text() == text
    removed = cli("build", "-w", workspace.root, "--addin", "none")
    assert removed.exit_code == 0, removed.output
    assert workspace.model_py.read_text() == original


@pytest.mark.parametrize("line,words", [
    ("(LoRA.adapt_output): ...->(backbone.layer4.0.bn1){inout1}->...", "is a BatchNorm2d"),
    ("(LoRA.adapt_output): ...->(backbone.layer4.0.conv3){inout1}->...", "closest: backbone.layer4.0.conv2"),
    ("(LoRA.adapt_output): ...->(backbone.layer4.0.conv1)->...", "column 27: adapt_output needs a tagged point"),
    ("(Adapter.adapt_across_input): ...->(backbone.layer3){in1}->...->{out1}(backbone.layer4.1)->...",
     "shape (2, 512, 2, 2), the point it is added to (2, 512, 1, 1)"),
])
def test_build_addin_errors_leave_the_workspace_unchanged(cli, workspace, line, words):
    before = snapshot(workspace.root)
    result = cli("build", "-w", workspace.root, "--addin", line)
    assert result.exit_code == 2
    assert words in " ".join(result.output.split()) and result.output.count("\n") == 1, result.output
    assert snapshot(workspace.root) == before


def test_find_addins_and_modules(cli, workspace):
    result = cli("find", "--addins")
    assert result.exit_code == 0, result.output
    for name in ("LoRA", "Adapter", "SSF", "BitFit", "LinearProbe", "PartialK"):
        assert name in result.output
    assert "r=4" in result.output and "adapt_across_input" in result.output
    modules = cli("find", "--modules", "-w", workspace.root)
    assert modules.exit_code == 0, modules.output
    assert "backbone.layer4.0.conv2  " in modules.output and "Conv2d" in modules.output
    assert "head.fc " in modules.output


def test_custom_addin_from_the_workspace(cli, workspace):
    (workspace.root / "custom_backbones.py").write_text(
        "import torch\nimport otxlike\n\n\n@otxlike.register_addin()\nclass Gate(otxlike.Addin):\n"
        "    \"\"\"Multiply a layer's output by a learned scalar.\"\"\"\n\n"
        "    def __init__(self, module, init=1.0):\n        super().__init__()\n"
        "        self.gate = torch.nn.Parameter(torch.tensor(float(init)))\n\n"
        "    def adapt_output(self, module, inputs, outputs):\n        return outputs * self.gate\n")
    result = cli("build", "-w", workspace.root, "--addin", "(Gate(init=0.5).adapt_output): ...->(backbone.layer4){inout1}->...")
    assert result.exit_code == 0, result.output
    text = workspace.model_py.read_text()
    assert "custom_backbones" in text and "(Gate(init=0.5).adapt_output)" in text
    listed = cli("find", "--addins", "-w", workspace.root)
    assert "Gate (custom)" in listed.output


# -- training under mmengine's Runner --------------------------------------------------------------


@pytest.mark.slow
def test_lora_workspace_trains_and_evaluates(cli, workspace, tmp_path):
    """1 epoch on 32 images: lora_B leaves zero, the frozen backbone is bitwise the loaded weights,
    the trainable count is the add-in's formula plus the head, eval loads the checkpoint."""
    import json

    import yaml
    from mmengine.registry import MODELS, DefaultScope

    scope, _, model = workspace.model_context()
    torch.manual_seed(0)
    # as pretrained weights: no residual branch's last BN at gamma 0 (ResNet's zero_init_residual), which
    # would give everything inside the frozen branch, LoRA included, a zero gradient (docs/addins.md)
    with DefaultScope.overwrite_default_scope(scope):
        backbone = MODELS.build(dict(model["backbone"], init_cfg=None, zero_init_residual=False))
    backbone.init_weights()
    start = {f"backbone.{k}": v.clone() for k, v in backbone.state_dict().items()}
    weights = tmp_path / "start.pth"
    torch.save({"state_dict": start}, weights)
    assert cli("build", "-w", workspace.root, "--weights", weights).exit_code == 0
    assert cli("build", "-w", workspace.root, "--addin", LORA).exit_code == 0
    result = cli("train", "-w", workspace.root, "--epochs", "1", "--cfg-options",
                 "train_dataloader.dataset.indices=32")
    assert result.exit_code == 0, result.output
    lora = 4 * (256 * 3 * 3 + 512)  # r * (in * kh * kw + out) of layer4.0.conv1
    head = 512 * 10 + 10
    total = sum(v.numel() for k, v in start.items() if "running" not in k and "num_batches" not in k) + lora + head
    assert f"Trainable/total parameters: {(lora + head) / 1e6:.2f}M / {total / 1e6:.2f}M" in result.output
    run = workspace.root / "outputs" / "latest"
    params = yaml.safe_load((run / "hparams.yaml").read_text())["params"]
    assert (params["trainable"], params["total"]) == (lora + head, total)
    checkpoint = next(run.glob("best_*.pth"))
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    assert state["addins.0_inout1.lora_B"].abs().sum() > 0
    for key, value in start.items():
        assert torch.equal(state[key], value), key
    evaluated = cli("eval", "-w", workspace.root)
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((workspace.root / "outputs" / sorted(p.name for p in (workspace.root / "outputs").iterdir()
                                                              if p.name.endswith("_eval"))[-1] / "metrics.json")
                         .read_text())
    assert "accuracy/top1" in metrics["metrics"]


def test_vpt_prompts_on_a_vit():
    """VPT-shallow on mmpretrain's VisionTransformer: the prompts join the tokens at the first
    layer and leave after the last, so the head sees the shapes it was built for; they get a gradient."""
    import mmpretrain.models  # noqa: F401  (registers the ViT)
    from mmengine.registry import MODELS, DefaultScope

    from otxlike.models.addins import attach, count_params

    with DefaultScope.overwrite_default_scope("mmpretrain"):
        model = MODELS.build(dict(type="ImageClassifier", backbone=dict(type="VisionTransformer", arch="deit-tiny",
                                                                          img_size=32, patch_size=8),
                                  head=dict(type="VisionTransformerClsHead", num_classes=5, in_channels=192)))
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        plain = model(x, mode="tensor")
    attach(model, ["(VPT(tokens=4).adapt_across_input): ...->{in1}(backbone.layers.0)->...->(backbone.layers.11){out1}->..."])
    assert count_params(model)[0] == 4 * 192 + (192 * 5 + 5)  # tokens * C, and the head
    prompted = model(x, mode="tensor")
    assert prompted.shape == plain.shape and not torch.allclose(prompted, plain)
    prompted.sum().backward()
    assert model.addins["0_in1"].prompts.grad.abs().sum() > 0
    with pytest.raises(OtxlikeError, match=r"VPT needs tokens \(N, L, 8\)"):
        conv = _tiny()
        attach(conv, ["(VPT(channels=8).adapt_across_input): ...->{in1}(backbone.0)->...->(backbone.3){out1}->..."])
        conv(torch.randn(1, 3, 8, 8))
