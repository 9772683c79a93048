"""Hyper-parameters by flag (``otxlike train --lr ... --cfg-options``): refused up front when bad,
effective when good (read back from what mmengine built and saved, not from our own config)."""

import json
import os
import math

import pytest
import torch
import yaml

from otxlike.data.digits import write_digits_classification
from otxlike.configedit.data import create_workspace
from otxlike.engine.hparams import HParams
from otxlike.engine.train import train
from otxlike.workspace.workspace import Workspace
from tests.conftest import snapshot


def _one_error_line(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


@pytest.mark.parametrize("args, message", [
    (["--lr", "-1"], "--lr must be a positive number, got -1.0"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--scheduler", "cosin"], "unknown --scheduler 'cosin' (choose one of: cosine, step, plateau, none)"),
    (["--optimizer", "AdamX"], "unknown --optimizer 'AdamX' (did you mean Adam"),
    (["--precision", "fp16"], "--precision fp16 needs a CUDA device"),
    (["--device", "cuda"], "--device cuda: torch sees no CUDA device here"),
    (["--eval-key", "coco/bbox_mAP"], "--eval-key 'coco/bbox_mAP' is not a metric of classification (its keys: "
                                      "accuracy/top1)"),
    (["--eval-key", "accuracy/top"], "did you mean 'accuracy/top1'?"),
    (["--cfg-options", "optim_wrapper.optimizer.lr"], "--cfg-options takes KEY=VALUE"),
])
def test_bad_values_are_one_line_before_anything_runs(cli, workspace, args, message):
    if torch.cuda.is_available() and ("fp16" in args or "cuda" in args):
        pytest.skip("this machine has CUDA")
    before = snapshot(workspace.root)
    line = _one_error_line(cli("train", *args, cwd=workspace.root))
    assert message in line
    assert snapshot(workspace.root) == before  # no run folder, no history entry


def test_plateau_needs_an_epoch_based_loop(cli, workspace):
    text = workspace.model_py.read_text()
    text = text.replace("train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)",
                        "train_cfg = dict(type='IterBasedTrainLoop', max_iters=20, val_interval=10)")
    workspace.model_py.write_text(text)
    before = snapshot(workspace.root)
    assert "--scheduler plateau needs an epoch-based training loop" in _one_error_line(
        cli("train", "--scheduler", "plateau", cwd=workspace.root))
    assert "--epochs needs an epoch-based training loop" in _one_error_line(
        cli("train", "--epochs", "2", cwd=workspace.root))
    assert snapshot(workspace.root) == before


def test_cpu_bf16_wrapper_autocasts_the_forward_only():
    from mmengine.optim import build_optim_wrapper

    import otxlike.engine.amp  # noqa: F401  registers otxlike.CPUBF16OptimWrapper

    model = torch.nn.Linear(4, 2)
    wrapper = build_optim_wrapper(model, dict(type="otxlike.CPUBF16OptimWrapper",
                                              optimizer=dict(type="SGD", lr=0.1)))
    x = torch.ones(3, 4)
    with wrapper.optim_context(model):
        assert model(x).dtype == torch.bfloat16
    assert model(x).dtype == torch.float32 and model.weight.dtype == torch.float32


#: A metric that never improves (the same value after every epoch), put in the workspace's
#: custom_backbones.py: what early stopping and plateau watch becomes deterministic.
CONSTANT_METRIC = """
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS


@METRICS.register_module(force=True)
class ConstantAccuracy(BaseMetric):
    default_prefix = 'constant'

    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        return {'accuracy': 50.0}
"""


def _with_constant_metric(ws) -> Workspace:
    (ws.root / "custom_backbones.py").write_text(CONSTANT_METRIC)
    pipeline = ws.data_pipeline_py.read_text().replace(
        "val_evaluator = dict(type='Accuracy', topk=(1, ))",
        "val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='ConstantAccuracy')]")
    ws.data_pipeline_py.write_text(pipeline)
    return Workspace.load(ws.root)


@pytest.fixture
def tiny(tmp_path):
    """A classification workspace on 3 digits per class (2 train / 1 val each)."""
    ds = write_digits_classification(tmp_path / "digits", limit=3)
    return Workspace.load(create_workspace("classification", tmp_path / "ws", train_root=ds.train_root,
                                           val_root=ds.val_root).root)


def _checkpoint(run):
    from otxlike.engine.checkpoints import checkpoint_loading

    with checkpoint_loading():
        return torch.load(run.run_dir / "epoch_{}.pth".format(run_epochs(run)), map_location="cpu")


def _epoch_lrs(seen) -> list[float]:
    """The learning rate of the last iteration of each epoch, as mmengine reported it."""
    lrs = {p.epoch: p.lr for p in seen if p.phase == "train"}
    return [lrs[e] for e in sorted(lrs)]


def run_epochs(run) -> int:
    return yaml.safe_load((run.run_dir / "hparams.yaml").read_text())["epochs"]


@pytest.mark.slow
def test_optimizer_lr_schedule_batch_and_cfg_options_reach_the_optimizer(tiny):
    seen = []
    hp = HParams(optimizer="AdamW", lr=0.002, scheduler="step", warmup=2, batch_size=4, seed=1,
                 cfg_options=("optim_wrapper.optimizer.weight_decay=0.003",))
    run = train(tiny, epochs=3, hparams=hp, on_progress=seen.append)
    assert seen[0].phase == "start" and seen[0].hparams["optimizer"] == "AdamW"
    assert {p.iters_per_epoch for p in seen if p.phase == "train"} == {math.ceil(20 / 4)}  # 20 images, batch 4
    group = _checkpoint(run)["optimizer"]["param_groups"][0]
    assert "amsgrad" in group and group["betas"] == (0.9, 0.999)  # torch.optim.AdamW's own keys
    assert group["weight_decay"] == 0.003 and group["initial_lr"] == 0.002
    # mmdet's 1x steps at 8/12 and 11/12 of the run: in 3 epochs both fall on epoch 2 (the last
    # epoch has no step after it), so epoch 3 trains at a tenth of the base lr
    assert _epoch_lrs(seen) == pytest.approx([0.002, 0.002, 0.0002], rel=1e-6, abs=0)
    saved = yaml.safe_load((run.run_dir / "hparams.yaml").read_text())
    assert saved["schedulers"] == ["LinearLR", "MultiStepLR"] and saved["warmup_iters"] == 2
    assert saved["cfg_options"] == ["optim_wrapper.optimizer.weight_decay=0.003"]


@pytest.mark.slow
def test_early_stop_ends_the_run_when_the_eval_key_stops_improving(tiny):
    seen = []
    run = train(_with_constant_metric(tiny), epochs=6,
                hparams=HParams(eval_key="constant/accuracy", early_stop=1), on_progress=seen.append)
    assert [p.epoch for p in seen if p.phase == "val"] == [1, 2]  # epoch 2 did not improve on epoch 1
    assert run.checkpoint.name.startswith("best_constant_accuracy_epoch_1")


@pytest.mark.slow
def test_plateau_divides_the_lr_after_patience_validations_without_improvement(tiny):
    seen = []
    train(_with_constant_metric(tiny), epochs=5, hparams=HParams(lr=0.01, scheduler="plateau",
                                                                eval_key="constant/accuracy"), on_progress=seen.append)
    # ReduceOnPlateauLR(patience=2, factor=0.1): validations 2, 3 and 4 do not improve on the first;
    # after the third of them (more than `patience`) the lr drops, so epoch 5 trains at a tenth
    assert _epoch_lrs(seen) == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.001], rel=1e-6, abs=0)


@pytest.mark.slow
def test_bf16_trains_on_the_cpu(tiny):
    run = train(tiny, epochs=1, hparams=HParams(precision="bf16"))
    assert run.checkpoint.is_file() and "accuracy/top1" in run.metrics
    assert yaml.safe_load((run.run_dir / "hparams.yaml").read_text())["precision"] == "bf16"
    config = next(run.run_dir.glob("*/vis_data/config.py")).read_text()
    assert "otxlike.CPUBF16OptimWrapper" in config


class _Interrupt(KeyboardInterrupt):
    """Ctrl-C, raised from the progress callback at a chosen point of the run."""


@pytest.mark.slow
def test_an_interrupted_run_resumes_where_it_stopped(tiny, cli):
    from otxlike.engine.evaluate import evaluate

    def stop_in_epoch_2(p):
        if p.phase == "train" and p.epoch == 2:
            raise _Interrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny, epochs=3, hparams=HParams(lr=0.01, seed=2), on_progress=stop_in_epoch_2)
    (stopped,) = [d for d in tiny.outputs.iterdir() if d.name.endswith("_train")]
    assert (stopped / "epoch_1.pth").is_file()
    marked = json.loads((stopped / "metrics.json").read_text())  # docs/errors.md: kept, marked failed
    assert marked["status"] == "failed" and marked["reason"] == "interrupted (Ctrl-C)" and marked["steps"] > 0
    # the interrupted workspace still takes a new command (here: one that must refuse other flags)
    assert "only --epochs can change" in _one_error_line(cli("train", "--resume", "--lr", "0.1", cwd=tiny.root))

    seen = []
    run = train(tiny, resume=True, epochs=4, on_progress=seen.append)  # --epochs extends it
    assert run.run_dir == stopped
    assert [p.epoch for p in seen if p.phase == "val"] == [2, 3, 4]  # mmengine resumed after epoch 1
    assert seen[0].hparams["lr"] == 0.01 and seen[0].hparams["seed"] == 2  # the run's own hyper-parameters
    # one iteration per epoch (20 images, batch 32). The checkpoint, after step 1 of a 3-step cosine,
    # holds lr_1 = 0.01 (1 + cos(pi / 3)) / 2; resumed with --epochs 4 the cosine's chainable form
    # (mmengine's CosineAnnealingParamScheduler, SGDR eq. 5) goes on towards 0 at step 4:
    # lr_t = lr_1 (1 + cos(pi t / 4)) / (1 + cos(pi / 4)). The checkpoint's own bounds would end it at step 3.
    lrs = {(p.epoch, p.iter): p.lr for p in seen if p.phase == "train"}
    assert sorted(lrs) == [(2, 1), (3, 1), (4, 1)]
    lr_1 = 0.01 * (1 + math.cos(math.pi / 3)) / 2
    for t in (2, 3):
        assert lrs[(t, 1)] == pytest.approx(lr_1 * (1 + math.cos(math.pi * t / 4)) / (1 + math.cos(math.pi / 4)))
    assert (stopped / "epoch_4.pth").is_file() and "accuracy/top1" in evaluate(tiny).metrics
    assert json.loads((stopped / "metrics.json").read_text()).get("status") != "failed"
    assert "no interrupted training run" in _one_error_line(cli("train", "--resume", cwd=tiny.root))


@pytest.mark.slow
def test_custom_optimizer_schedule_loss_and_metric_from_the_workspace(tiny):
    """docs/examples/custom_training.py, used as docs/training.md says."""
    import shutil
    from pathlib import Path

    shutil.copy(Path(__file__).resolve().parents[1] / "docs" / "examples" / "custom_training.py", tiny.root)
    manifest = tiny.root / "workspace.yaml"
    manifest.write_text(manifest.read_text() + "custom_modules: [custom_training.py]\n")
    model = tiny.model_py.read_text()
    loss = "loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, loss_weight=1.0)"
    assert loss in model
    model = model.replace(loss, "loss=dict(type='SmoothedCrossEntropy', smoothing=0.1)")
    start = model.index("param_scheduler = [")
    model = model[:start] + "param_scheduler = [dict(type='HalvingLR', by_epoch=True)]\n" + \
        model[model.index("]\n", start) + 2:]
    tiny.model_py.write_text(model)
    pipeline = tiny.data_pipeline_py.read_text().replace(
        "val_evaluator = dict(type='Accuracy', topk=(1, ))",
        "val_evaluator = [dict(type='Accuracy', topk=(1, )), dict(type='BalancedAccuracy')]")
    tiny.data_pipeline_py.write_text(pipeline)

    tiny = Workspace.load(tiny.root)
    seen = []
    run = train(tiny, epochs=3, hparams=HParams(optimizer="SignSGD", lr=0.001, eval_key="balanced/accuracy"),
                on_progress=seen.append)
    assert _checkpoint(run)["optimizer"]["param_groups"][0]["sign"] is True  # SignSGD's own defaults
    assert _epoch_lrs(seen) == pytest.approx([0.001, 0.0005, 0.00025], rel=1e-6, abs=0)  # halved each epoch
    # one val image per class: the mean per-class recall is the plain top-1 of mmpretrain's Accuracy
    assert run.metrics["balanced/accuracy"] == pytest.approx(run.metrics["accuracy/top1"])
    assert run.checkpoint.name.startswith("best_balanced_accuracy_epoch_")
    config = next(run.run_dir.glob("*/vis_data/config.py")).read_text()
    assert "SmoothedCrossEntropy" in config and "HalvingLR" in config


@pytest.mark.parametrize("saved, hidden", [("cpu", True), ("auto", False)])
def test_resume_hides_the_gpu_when_the_run_trained_on_the_cpu(cli, tiny, monkeypatch, saved, hidden):
    """``--resume`` refuses ``--device`` and trains on the run's own device, so the command reads
    that device from the run's hparams.yaml and hides CUDA before torch is imported (mmengine
    uses what torch sees) for a run that trained on the CPU."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    run = tiny.outputs / "20260101_000000_train"
    run.mkdir(parents=True)
    (run / "epoch_1.pth").write_bytes(b"")
    (run / "last_checkpoint").write_text(str(run / "epoch_1.pth"))
    (run / "hparams.yaml").write_text(yaml.safe_dump({"overrides": {"device": saved}}))
    # a flag --resume refuses: the command stops after choosing the device, before training
    assert "only --epochs can change" in _one_error_line(cli("train", "--resume", "--lr", "0.1", cwd=tiny.root))
    assert (os.environ.get("CUDA_VISIBLE_DEVICES") == "") is hidden
