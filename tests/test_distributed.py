"""``otxlike train --nproc / --gpus``: bad flags refused at once; two gloo processes on the digits
sample train the same weights on both ranks, the same as one process with the same global batch;
a worker that dies ends the run with one line naming its rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from otxlike.workspace.workspace import Workspace
from tests.conftest import snapshot

#: No data-loading processes (two ranks on a small machine), as --cfg-options.
NO_LOADER_WORKERS = ("train_dataloader.num_workers=0 train_dataloader.persistent_workers=False "
                     "val_dataloader.num_workers=0 val_dataloader.persistent_workers=False")

#: A workspace module with two hooks: one saves each rank's weights after the epoch (after
#: otxlike's BatchNorm averaging, which runs at a higher priority), one ends a rank abruptly.
HOOKS = '''
import os

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module(force=True)
class SaveRankWeights(Hook):
    priority = "LOWEST"

    def __init__(self, out):
        self.out = out

    def after_train_epoch(self, runner):
        model = getattr(runner.model, "module", runner.model)
        name = f"{os.environ.get('WORLD_SIZE', '1')}procs_rank{os.environ.get('RANK', '0')}.pt"
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, os.path.join(self.out, name))


@HOOKS.register_module(force=True)
class DieAt(Hook):
    """Stands for a worker killed by the machine (the OOM killer): no exception, no cleanup."""

    def __init__(self, rank, iteration):
        self.rank, self.iteration = rank, iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.iteration:
            import torch.distributed as dist

            dist.barrier()  # every rank is here: rank 0 has reported its `iteration` steps
            if int(os.environ.get("RANK", "0")) == self.rank:
                os._exit(3)
'''


def _with_hooks(ws: Workspace, hooks: str) -> Workspace:
    (ws.root / "custom_backbones.py").write_text(HOOKS)
    with open(ws.model_py, "a") as f:
        f.write(f"\ncustom_hooks = {hooks}\n")
    return Workspace.load(ws.root)


def _otxlike(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-m", "otxlike", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize("flags, message", [
    (["--nproc", "0"], "--nproc must be at least 1, got 0"),
    (["--nproc", "2", "--gpus", "2"], "--nproc and --gpus both given"),
    (["--gpus", "0,0"], "--gpus '0,0' names a GPU twice"),
    (["--gpus", "two"], "--gpus takes a count or GPU indexes, got 'two'"),
    (["--nproc", "2", "--nnodes", "2"], "--nnodes 2 needs the address of the first machine"),
    (["--nproc", "2", "--nnodes", "2", "--master-addr", "n0", "--node-rank", "2"], "--node-rank must be between 0 and 1"),
    (["--nproc", "2", "--rdzv-endpoint", "n0"], "--rdzv-endpoint takes HOST:PORT, got 'n0'"),
    (["--nproc", "2", "--device", "cuda"], "--nproc runs CPU processes; --device cuda asks for a GPU"),
])
def test_bad_launch_flags_are_one_line_before_anything_runs(cli, workspace, flags, message):
    before = snapshot(workspace.root)
    line = _one_line(cli("train", "-w", workspace.root, *flags))
    assert message in line, line
    assert snapshot(workspace.root) == before


def test_gpus_on_a_machine_without_cuda(cli, workspace):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    before = snapshot(workspace.root)
    line = _one_line(cli("train", "-w", workspace.root, "--gpus", "2"))
    assert "--gpus 2: torch sees no CUDA device here" in line and "--nproc" in line, line
    assert snapshot(workspace.root) == before


@pytest.mark.slow
def test_two_processes_train_what_one_process_with_their_global_batch_trains(workspace, tmp_path):
    """Rank 0 and rank 1 end the epoch with identical tensors (DDP averages the gradients; otxlike
    averages BatchNorm's running statistics), and the same as one process with the same global
    batch (16) and learning rate (0.02: 0.01 for a batch of 8, scaled x2 by the linear rule).

    BatchNorm is kept in eval mode here (``norm_eval=True``): in training mode each rank
    normalises by the statistics of its own 8 images, one process by those of 16, which is a
    different computation by design (DDP without SyncBatchNorm). What is left differs only in
    the order of float sums (gloo's all-reduce of two half-batch gradients against one backward
    over 16 images), so the weights agree to 1e-4 relative (measured: 4e-7) and the accuracy on
    the 40 validation images exactly or by one image at most (2.5 points).
    """
    import torch

    from otxlike.engine.hparams import HParams
    from otxlike.engine.train import train

    ws = _with_hooks(workspace, f"[dict(type='SaveRankWeights', out={str(tmp_path)!r})]")
    # no random crops: one process and two draw them from different random streams
    crop = "    dict(type='RandomCrop', crop_size=input_size, padding=4),\n"
    pipeline = ws.data_pipeline_py.read_text()
    assert crop in pipeline
    ws.data_pipeline_py.write_text(pipeline.replace(crop, ""))
    options = f"{NO_LOADER_WORKERS} model.backbone.norm_eval=True"
    two = _otxlike("train", "--nproc", "2", "--epochs", "1", "--batch-size", "8", "--lr", "0.01", "--weights", "none",
                   "--cfg-options", options, cwd=ws.root)
    assert two.returncode == 0, two.stdout + two.stderr
    # progress comes from rank 0 only: one summary line, one line per epoch
    lines = two.stdout.splitlines()
    assert sum(line.startswith("[*] hparams:") for line in lines) == 1, two.stdout
    assert sum(line.startswith("[*] epoch 1/1 train: 10 iterations") for line in lines) == 1, two.stdout  # 160 / 16
    assert sum(line.startswith("[*] epoch 1/1 val:") for line in lines) == 1, two.stdout
    assert "batch 8 x 2 processes = 16, SGD lr 0.02 (0.01 x 2, linear scaling)" in two.stdout
    runs = sorted(d for d in ws.outputs.iterdir() if d.name.endswith("_train"))
    assert len(runs) == 1
    used = yaml.safe_load((runs[0] / "hparams.yaml").read_text())
    assert (used["world_size"], used["batch_size"], used["global_batch"], used["lr"], used["lr_scaled"]) == \
        (2, 8, 16, 0.01, 0.02)
    two_metrics = json.loads((runs[0] / "metrics.json").read_text())["metrics"]
    assert Workspace.load(ws.root).manifest["history"][-1]["run"] == runs[0].name

    rank0, rank1 = (torch.load(tmp_path / f"2procs_rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    assert [k for k in rank0 if not torch.equal(rank0[k], rank1[k])] == []

    one = train(ws, hparams=HParams(epochs=1, batch_size=16, lr=0.02, weights="none",
                                    cfg_options=tuple(options.split())))
    single = torch.load(tmp_path / "1procs_rank0.pt")
    for key, value in single.items():
        if value.is_floating_point():
            assert torch.allclose(rank0[key], value, rtol=1e-4, atol=1e-6), key
    key = "accuracy/top1"
    assert abs(two_metrics[key] - one.metrics[key]) <= 2.5, (two_metrics, one.metrics)


@pytest.mark.slow
def test_a_worker_that_dies_ends_the_run_with_its_rank(workspace):
    ws = _with_hooks(workspace, "[dict(type='DieAt', rank=1, iteration=3)]")
    result = _otxlike("train", "--nproc", "2", "--epochs", "1", "--batch-size", "8", "--weights", "none",
                      "--cfg-options", NO_LOADER_WORKERS, cwd=ws.root)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(errors) == 1, result.stdout + result.stderr
    assert "training failed after 3 steps: WorkerFailed: rank 1 of 2 failed: exited with code 3" in errors[0]
    runs = [d for d in ws.outputs.iterdir() if d.name.endswith("_train")]
    assert len(runs) == 1
    doc = json.loads((runs[0] / "metrics.json").read_text())
    assert doc["status"] == "failed" and doc["steps"] == 3 and "rank 1 of 2" in doc["reason"]
    history = Workspace.load(ws.root).manifest["history"]
    assert history[-1]["action"] == "train" and history[-1]["status"] == "failed"
    assert not (ws.outputs / "latest").exists()


def test_one_process_reports_the_lr_model_py_auto_scale_lr_trains_with(monkeypatch):
    """mmengine's ``Runner.scale_lr`` scales in a world of one too when model.py enables
    ``auto_scale_lr``: lr x batch / base_batch_size (Goyal et al. 2017's linear rule), so
    hparams.yaml's ``lr_scaled`` and the summary line say so; without ``base_batch_size`` the run
    is refused before it starts (mmengine would assert once training began)."""
    from mmengine.config import Config

    from otxlike.cli.render.progress import hparams_line
    from otxlike.engine.distributed import distribute
    from otxlike.errors import OtxlikeError

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    cfg = Config(dict(train_dataloader=dict(batch_size=32), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                      auto_scale_lr=dict(enable=True, base_batch_size=256)))
    used = distribute(cfg, "cpu")
    assert used == {"world_size": 1, "global_batch": 32, "lr_scaled": pytest.approx(0.1 * 32 / 256)}
    line = hparams_line({"epochs": 1, "batch_size": 32, "optimizer": "SGD", "lr": 0.1, "schedulers": [],
                         "warmup_iters": 0, "eval_interval": 1, "eval_key": "accuracy/top1", "early_stop": None,
                         "precision": "fp32", "device": "cpu", "seed": 0, "cfg_options": [],
                         **used})
    assert "SGD lr 0.0125 (0.1 x 0.125, linear scaling)" in line
    cfg.auto_scale_lr = dict(enable=False, base_batch_size=256)
    assert distribute(cfg, "cpu")["lr_scaled"] == 0.1
    cfg.auto_scale_lr = dict(enable=True)
    with pytest.raises(OtxlikeError, match="no base_batch_size"):
        distribute(cfg, "cpu")
