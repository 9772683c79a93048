"""Training and evaluation on real digits with mmengine's Runner."""

import json
import shutil

import pytest

from otxlike.configedit.backbone import swap_backbone
from otxlike.configedit.data import set_data
from otxlike.engine.evaluate import evaluate
from otxlike.engine.train import train
from otxlike.errors import OtxlikeError
from otxlike.workspace.workspace import Workspace


def test_class_mismatch_is_caught_before_training(workspace, tmp_path, digits):
    val = tmp_path / "val"
    for c in "012345678":  # one class short
        shutil.copytree(digits.val_root / c, val / c)
    before = (workspace.root / "data.yaml").read_text()
    with pytest.raises(OtxlikeError, match=r"missing from val: \['9'\]"):
        set_data(workspace, val_root=val)  # found at build
    assert (workspace.root / "data.yaml").read_text() == before
    (workspace.root / "data.yaml").write_text(before.replace(str(digits.val_root), str(val)))  # edited by hand
    with pytest.raises(OtxlikeError, match="differ from train classes"):
        train(workspace)  # found again before training
    assert not any(workspace.outputs.iterdir())


def test_num_classes_mismatch(workspace):
    text = workspace.model_py.read_text().replace("num_classes=10", "num_classes=7")
    workspace.model_py.write_text(text)
    with pytest.raises(OtxlikeError, match="num_classes=7 but the data has 10 classes"):
        train(workspace)


def test_epochs_must_be_positive(workspace):
    with pytest.raises(OtxlikeError, match="at least 1"):
        train(workspace, epochs=0)


@pytest.mark.slow
def test_swap_train_eval_torchvision(workspace, digits):
    """torchvision backbone in an mmpretrain classifier: trains, checkpoints, evaluates."""
    swap_backbone(workspace, "torchvision.resnet18")
    seen = []
    result = train(workspace, epochs=2, on_progress=seen.append)
    iters = [p for p in seen if p.phase == "train"]
    assert len(iters) == 2 * 5  # 160 train images / batch 32, two epochs
    assert all(p.loss is not None and p.loss > 0 and p.lr > 0 for p in iters)
    assert [p.epoch for p in seen if p.phase == "val"] == [1, 2]
    assert result.checkpoint.is_file() and (workspace.outputs / "latest").resolve() == result.run_dir
    # top-1 in percent of the 40 val images: 2.5 points per image (a fraction, or a count over
    # another set of images, is not a whole number of images here)
    images = len(list(digits.val_root.rglob("*.png")))
    correct = result.metrics["accuracy/top1"] * images / 100
    assert images == 40 and correct == pytest.approx(round(correct), abs=1e-4) and 0 <= round(correct) <= images

    evaluated = evaluate(workspace)
    assert evaluated.checkpoint == result.checkpoint
    doc = json.loads((evaluated.run_dir / "metrics.json").read_text())
    assert doc["metrics"]["accuracy/top1"] == pytest.approx(evaluated.metrics["accuracy/top1"])
    # same checkpoint, same val split: eval reproduces the training run's best validation score
    assert evaluated.metrics["accuracy/top1"] == pytest.approx(
        max(p.metrics["accuracy/top1"] for p in seen if p.phase == "val"))

    # the run's saved config is complete: mmengine's Runner alone tests the checkpoint with it
    # (docs/workspace.md) and gets what otxlike eval got
    from mmengine.config import Config
    from mmengine.runner import Runner

    from otxlike.engine.checkpoints import checkpoint_loading

    cfg = Config.fromfile(str(result.run_dir / "model.py"))
    cfg.work_dir, cfg.load_from = str(workspace.root / "upstream"), str(result.checkpoint)
    with checkpoint_loading():
        assert Runner.from_cfg(cfg).test()["accuracy/top1"] == pytest.approx(evaluated.metrics["accuracy/top1"])

    # the curves: TensorBoard's own reader finds the losses mmengine logged to scalars.json, and
    # curves.png is a picture of them
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (vis_data,) = result.run_dir.glob("*/vis_data")
    logged = [json.loads(line) for line in (vis_data / "scalars.json").read_text().splitlines()]
    events = EventAccumulator(str(vis_data))
    events.Reload()
    assert [e.value for e in events.Scalars("loss")] == pytest.approx([r["loss"] for r in logged if "loss" in r])
    assert [e.step for e in events.Scalars("accuracy/top1")] == [1, 2]
    with Image.open(result.curves) as picture:
        assert result.curves == result.run_dir / "curves.png" and picture.format == "PNG" and picture.size == (900, 350)


@pytest.mark.slow
@pytest.mark.exhaustive
def test_demo_scale_mmdet_regnet_learns(tmp_path):
    """The demo's swap on the full digits split: RegNet from mmdet reaches >= 90 % top-1 in 3 epochs."""
    from otxlike.configedit.data import create_workspace
    from otxlike.data.digits import write_digits_classification
    from otxlike.workspace.workspace import Workspace

    ds = write_digits_classification(tmp_path / "digits")
    ws = Workspace.load(create_workspace("classification", tmp_path / "ws", train_root=ds.train_root,
                                         val_root=ds.val_root).root)
    swap_backbone(ws, "mmdet.RegNet")
    train(ws, epochs=3)
    assert evaluate(ws).metrics["accuracy/top1"] >= 90.0


def test_checkpoint_with_foreign_objects_is_refused(workspace, tmp_path):
    import datetime

    import torch

    path = tmp_path / "foreign.pth"
    torch.save({"state_dict": {}, "meta": {"when": datetime.date(2026, 1, 1)}}, path)
    with pytest.raises(OtxlikeError, match="datetime.date"):
        evaluate(workspace, checkpoint=path)
    assert not workspace.outputs.exists() or not any(workspace.outputs.iterdir())


def test_missing_checkpoint_file(workspace, tmp_path):
    with pytest.raises(OtxlikeError, match="does not exist"):
        evaluate(workspace, checkpoint=tmp_path / "nope.pth")
    with pytest.raises(OtxlikeError, match="unknown split"):
        evaluate(workspace, split="train")


def test_empty_coco_results_mean_zero_ap():
    from otxlike.engine.hooks import complete_metrics

    coco = {"type": "CocoMetric", "metric": ["bbox", "segm"]}
    assert complete_metrics(coco, {}) == {"coco/bbox_mAP": 0.0, "coco/bbox_mAP_50": 0.0,
                                          "coco/segm_mAP": 0.0, "coco/segm_mAP_50": 0.0}
    assert complete_metrics(coco, {"coco/bbox_mAP": 0.25}) == {"coco/bbox_mAP": 0.25}
    assert complete_metrics({"type": "IoUMetric"}, {}) == {}


def test_a_checkpoint_of_another_model_is_refused(cli, workspace, tmp_path):
    """mmengine would load it non-strictly and report chance-level metrics for a random head."""
    import torch
    from mmengine.registry import MODELS, DefaultScope

    from tests.conftest import snapshot

    cfg = workspace.config()
    cfg.model.head.num_classes = 7  # the same classifier, trained on 7 classes
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        other = MODELS.build(cfg.model)
    torch.save({"state_dict": other.state_dict(), "meta": {}}, tmp_path / "other.pth")
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, tmp_path / "detector.pth")
    (tmp_path / "random.pth").write_bytes(bytes(range(256)) * 8)
    before = snapshot(workspace.root)
    for name, message in (("other.pth", "2 have another shape (e.g. head.fc.weight (7, 512) vs (10, 512)"),  # weight, bias
                          ("detector.pth", "tensors are missing (e.g. backbone.conv1.weight)"),
                          ("random.pth", "is not a readable torch checkpoint")):
        result = cli("eval", "--checkpoint", tmp_path / name, cwd=workspace.root)
        assert result.exit_code == 2 and message in result.output, result.output
        assert len([line for line in result.output.splitlines() if line.strip()]) == 1
    assert snapshot(workspace.root) == before  # no run folder, no history entry


# -- a run that fails: nothing left before its first step, marked failed after --------------------

FAILING_HOOK = '''
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module(force=True)  # the test registers it once per case
class FailAt(Hook):
    """Stands for a disk that fills up: raises at a given point of training."""

    def __init__(self, where):
        self.where = where

    def before_train(self, runner):
        if self.where == "start":
            raise OSError(28, "No space left on device")

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.where == "step" and runner.iter >= 1:
            raise OSError(28, "No space left on device")
'''


@pytest.mark.slow
@pytest.mark.parametrize("where", ["start", "step"])
def test_a_failing_run_leaves_nothing_or_a_run_marked_failed(cli, workspace, where):
    (workspace.root / "custom_backbones.py").write_text(FAILING_HOOK)
    with open(workspace.model_py, "a") as f:
        f.write(f"\ncustom_hooks = [dict(type='FailAt', where='{where}')]\n")
    result = cli("train", "-w", workspace.root, "--epochs", "1", "--weights", "none")
    assert result.exit_code == 2 and "No space left on device" in result.output, result.output
    runs = [d for d in (workspace.outputs.iterdir() if workspace.outputs.exists() else []) if d.name.endswith("_train")]
    history = Workspace.load(workspace.root).manifest["history"]
    if where == "start":
        assert "before its first step" in result.output and runs == []
        assert history[-1]["action"] != "train"
        return
    assert "failed after 2 steps" in result.output and len(runs) == 1
    doc = json.loads((runs[0] / "metrics.json").read_text())
    assert doc["status"] == "failed" and doc["steps"] == 2 and "No space left" in doc["reason"]
    assert history[-1]["action"] == "train" and history[-1]["status"] == "failed"
    assert not (workspace.outputs / "latest").exists()  # eval / export keep using the last good run


@pytest.mark.parametrize("old, new, message", [
    ("dict(type='PackInputs')", "dict(type='PackInput')", "pipeline[3]: transform type 'PackInput' is not registered in mmpretrain (did you mean PackInputs"),
    ("dict(type='Accuracy'", "dict(type='Acuracy'", "val_evaluator: metric type 'Acuracy' is not registered in mmpretrain (did you mean Accuracy"),
    ("dict(type='CustomDataset'", "dict(type='CustomDataSet'", "dataset type 'CustomDataSet' is not registered"),
])
def test_a_type_typo_in_data_pipeline_is_found_before_the_run(cli, workspace, old, new, message):
    text = workspace.data_pipeline_py.read_text()
    assert old in text
    workspace.data_pipeline_py.write_text(text.replace(old, new, 1))
    result = cli("train", "-w", workspace.root)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not workspace.outputs.exists() or not any(workspace.outputs.iterdir())
