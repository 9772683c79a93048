"""The templates' recipes on the sample data: metric and wall time of `otxlike train`, next to the
bare mmengine Runner on the same merged config, and the compute limit.

Run: .venv/bin/python benchmarks/recipes.py [--task T ...] [--epochs N] [--weights none|auto]

For each task, in one process:
1. otxlike: `create_workspace` on the digits sample (classification: 1,438 / 359 32x32 images;
   the other tasks: 200 / 50 128x128 canvases), then `otxlike.engine.train.train`.
2. bare Runner: the same merged config (model.py + data_pipeline.py, data roots, the same
   hyper-parameters) given to `mmengine.runner.Runner.from_cfg(cfg).train()`.
3. compute limit: the same number of `model.train_step` calls (forward + backward + optimizer
   step) on the training batches already in memory (one epoch's batches, reused every epoch).
Ratios: otxlike / bare Runner (the tool's overhead; target <= 1.05) and otxlike / compute limit
(data pipeline and tool together; target <= 1.2). The metric is the task's main key after the last
epoch (targets from scratch: top-1 >= 99 %, bbox mAP >= 0.50, segm mAP >= 0.50, mIoU >= 60 %).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGETS = {"classification": 99.0, "detection": 0.50, "instance-segmentation": 0.50, "segmentation": 60.0}


def _merged_config(ws, work_dir: Path, hp):
    from otxlike.engine.config import load_config
    from otxlike.engine.hparams import apply, apply_start
    from otxlike.engine.weights import preflight
    from otxlike.workspace.workspace import config_scope

    cfg = load_config(ws, work_dir, ("train", "val"))
    apply(cfg, hp, ws.task_spec, config_scope(cfg))
    apply_start(cfg, hp, preflight(cfg.model, hp.weights))
    cfg.log_level = "ERROR"
    return cfg


def bare_runner(ws, out: Path, hp) -> tuple[float, float | None]:
    """Wall time of mmengine's Runner training the merged config, and its metric afterwards."""
    from mmengine.runner import Runner

    from otxlike.engine.checkpoints import checkpoint_loading

    cfg = _merged_config(ws, out / "bare", hp)
    start = time.perf_counter()
    runner = Runner.from_cfg(cfg)
    with checkpoint_loading():
        runner.train()
    seconds = time.perf_counter() - start
    metrics = runner.val()
    return seconds, metrics.get(ws.task_spec.metric)


def compute_limit(ws, out: Path, hp) -> float:
    """Wall time of epochs x iterations ``train_step`` calls on batches already in memory."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, DefaultScope
    from mmengine.runner import Runner

    cfg = _merged_config(ws, out / "limit", hp)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        batches = list(loader)
        model.train()
        start = time.perf_counter()
        for _ in range(cfg.train_cfg.max_epochs):
            for batch in batches:
                model.train_step(batch, wrapper)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", action="append", choices=list(TARGETS))
    parser.add_argument("--epochs", type=int, default=None, help="override the templates' max_epochs")
    parser.add_argument("--weights", default="none", choices=["none", "auto"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from otxlike.configedit.data import create_workspace
    from otxlike.engine.hparams import HParams
    from otxlike.engine.train import train
    from otxlike.tasks import get_task
    from otxlike.workspace.workspace import Workspace

    out = args.out or Path(tempfile.mkdtemp(prefix="otxlike-recipes-"))
    for name in args.task or list(TARGETS):
        task = get_task(name)
        root = out / f"data-{task.sample}"
        if not root.exists():
            task.write_sample(root)
        ws = Workspace.load(create_workspace(name, out / f"ws-{name}", train_root=root / "train",
                                             val_root=root / "val").root)
        hp = HParams(epochs=args.epochs, weights=args.weights)
        run = train(ws, hparams=hp)
        ours = run.metrics.get(task.metric, 0.0)
        bare_s, bare_metric = bare_runner(ws, out / f"bare-{name}", hp)
        limit_s = compute_limit(ws, out / f"limit-{name}", hp)
        print(f"{name:22s} {task.metric} {ours:.4g} (bare Runner {bare_metric if bare_metric is None else round(bare_metric, 4)}, "
              f"target {TARGETS[name]})  otxlike {run.seconds:.1f} s, bare Runner {bare_s:.1f} s "
              f"(x{run.seconds / bare_s:.3f}), compute limit {limit_s:.1f} s (x{run.seconds / limit_s:.3f})",
              flush=True)


if __name__ == "__main__":
    main()
