"""``otxlike train``: mmengine's Runner on the workspace's config and data.

The workspace config is ``model.py`` merged with ``data_pipeline.py``; the data roots come from
``data.yaml``. Each run writes to ``outputs/<timestamp>_train/`` (:mod:`otxlike.workspace.runs`).
"""

from __future__ import annotations

import shutil
import time
from typing import Callable

from otxlike.engine.checkpoints import checkpoint_loading
from otxlike.engine.config import load_config, set_epochs
from otxlike.engine.hooks import Progress, progress_hook
from otxlike.engine.runner import RunResult, make_runner, prints_to_log
from otxlike.errors import OtxlikeError
from otxlike.workspace.runs import find_checkpoint, new_run_dir, point_latest, write_metrics
from otxlike.workspace.workspace import Workspace


def train(ws: Workspace, epochs: int | None = None, on_progress: Callable[[Progress], None] | None = None,
          verbose: bool = False) -> RunResult:
    """Train the workspace's model on its train split, validating on val after each epoch.

    Args:
        ws: The workspace.
        epochs: Override of ``max_epochs`` for this run (must be >= 1).
        on_progress: Called after every iteration and validation.
        verbose: Also show mmengine's own log lines on the console.

    Returns:
        :class:`RunResult` with the best checkpoint (``save_best``) or the last one, and the last
        validation metrics.

    Raises:
        OtxlikeError: Bad config or data (checked before training starts).
    """
    if epochs is not None and epochs < 1:
        raise OtxlikeError(f"--epochs must be at least 1, got {epochs}")
    start = time.perf_counter()
    run_dir = new_run_dir(ws, "train")
    try:
        cfg = load_config(ws, run_dir, ("train", "val"))
        if epochs is not None:
            set_epochs(cfg, epochs)
        runner = make_runner(cfg, verbose)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    hook = progress_hook(on_progress)
    runner.register_hook(hook)
    with checkpoint_loading(), prints_to_log(runner, verbose):
        runner.train()
    metrics = hook.last_metrics
    checkpoint = find_checkpoint(run_dir)
    write_metrics(run_dir, metrics, checkpoint)
    point_latest(ws, run_dir)
    ws.record("train", {"run": run_dir.name, "metrics": metrics})
    return RunResult(run_dir, checkpoint, metrics, time.perf_counter() - start)
