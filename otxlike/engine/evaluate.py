"""``otxlike eval``: a checkpoint evaluated on the val or test split with the task's evaluator."""

from __future__ import annotations

import time
from pathlib import Path

from otxlike.engine.checkpoints import check_fits, checkpoint_loading
from otxlike.engine.config import load_config
from otxlike.engine.hooks import complete_metrics
from otxlike.engine.runner import RunResult, make_runner, prints_to_log
from otxlike.errors import OtxlikeError
from otxlike.workspace.runs import pick_checkpoint, run_dir_or_nothing, write_metrics
from otxlike.workspace.workspace import Workspace


def evaluate(ws: Workspace, checkpoint: str | Path | None = None, split: str = "val",
             verbose: bool = False) -> RunResult:
    """Evaluate a checkpoint on ``split`` (``val`` or ``test``; test falls back to val's folder).

    Args:
        ws: The workspace.
        checkpoint: A ``.pth`` file or a training run folder; default: the one
            :func:`~otxlike.workspace.runs.find_checkpoint` picks from ``outputs/latest``.
        split: Which split of data.yaml to evaluate on.
        verbose: Also show mmengine's own log lines on the console.

    Returns:
        :class:`RunResult`; ``metrics`` as the task's evaluator reports them (top-1 accuracy in
        percent for classification), also written to ``<run_dir>/metrics.json``.

    Raises:
        OtxlikeError: No checkpoint, a checkpoint that does not fit the model, or bad data.
    """
    if split not in ("val", "test"):
        raise OtxlikeError(f"unknown split '{split}'", "choose val or test")
    checkpoint = pick_checkpoint(ws, checkpoint)
    guard = checkpoint_loading(checkpoint)
    start = time.perf_counter()
    with run_dir_or_nothing(ws, "eval", f"evaluation of {checkpoint.name} failed",
                            "is the checkpoint from this workspace's model?") as run_dir:
        cfg = load_config(ws, run_dir, ("train", split))  # train: the class list to check against
        if split == "val":
            cfg.test_dataloader, cfg.test_evaluator = cfg.val_dataloader, cfg.val_evaluator
        check_fits(checkpoint, cfg)
        cfg.load_from = str(checkpoint)
        runner = make_runner(cfg, verbose)
        with guard, prints_to_log(runner, verbose):
            metrics = runner.test()
    metrics = complete_metrics(cfg.get("test_evaluator"), metrics)
    write_metrics(run_dir, metrics, checkpoint)
    ws.record("eval", {"run": run_dir.name, "checkpoint": str(checkpoint), "metrics": metrics})
    return RunResult(run_dir, checkpoint, metrics, time.perf_counter() - start)
