"""``otxlike train``: mmengine's Runner on the workspace's config and data.

The workspace config is ``model.py`` merged with ``data_pipeline.py``; the data roots come from
``data.yaml``. Each run writes to ``outputs/<timestamp>_train/`` (:mod:`otxlike.workspace.runs`).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from typing import Callable

from otxlike.engine.checkpoints import checkpoint_loading
from otxlike.engine.config import load_config
from otxlike.engine.hooks import Progress, progress_hook
from otxlike.engine.hparams import HParams, apply, check_device, effective
from otxlike.engine.runner import RunResult, make_runner, prints_to_log
from otxlike.engine.weights import preflight
from otxlike.fileio import atomic_write_text, dump_yaml
from otxlike.workspace.runs import find_checkpoint, new_run_dir, point_latest, write_metrics
from otxlike.workspace.workspace import Workspace, config_scope


def train(ws: Workspace, epochs: int | None = None, on_progress: Callable[[Progress], None] | None = None,
          verbose: bool = False, hparams: HParams | None = None) -> RunResult:
    """Train the workspace's model on its train split, validating on val.

    Args:
        ws: The workspace.
        epochs: Override of ``max_epochs`` for this run (must be >= 1); the same as
            ``hparams.epochs``, which it replaces when given.
        on_progress: Called once with the effective hyper-parameters and the fate of the
            pretrained weights (phase ``start``), then after every iteration and validation.
        verbose: Also show mmengine's own log lines on the console.
        hparams: Overrides of model.py's training settings for this run
            (:class:`~otxlike.engine.hparams.HParams`); the effective values are written to
            ``<run_dir>/hparams.yaml``.

    Returns:
        :class:`RunResult` with the best checkpoint (``save_best``) or the last one, the last
        validation metrics and what became of the pretrained weights (also in ``metrics.json``:
        ``weights`` maps each module to its checkpoint, or null for random initialisation).

    Raises:
        OtxlikeError: Bad hyper-parameters, config or data (checked before training starts; no
            run folder is left then).
    """
    hp = hparams or HParams()
    if epochs is not None:
        hp = dataclasses.replace(hp, epochs=epochs)
    hp.check()
    start = time.perf_counter()
    run_dir = new_run_dir(ws, "train")
    try:
        cfg = load_config(ws, run_dir, ("train", "val"))
        apply(cfg, hp, ws.task_spec, config_scope(cfg))
        weights = preflight(cfg.model, hp.weights)
        used = effective(cfg, hp, check_device(hp), weights)
        atomic_write_text(run_dir / "hparams.yaml", dump_yaml(used))
        runner = make_runner(cfg, verbose)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if on_progress is not None:
        on_progress(Progress("start", 0, used["epochs"], 0, 0, hparams=used))
    hook = progress_hook(on_progress)
    runner.register_hook(hook)
    with checkpoint_loading(), prints_to_log(runner, verbose):
        runner.train()
    metrics = hook.last_metrics
    checkpoint = find_checkpoint(run_dir)
    write_metrics(run_dir, metrics, checkpoint, weights={w.where: w.checkpoint if w.loaded else None
                                                         for w in weights})
    point_latest(ws, run_dir)
    ws.record("train", {"run": run_dir.name, "metrics": metrics, "hparams": used})
    return RunResult(run_dir, checkpoint, metrics, time.perf_counter() - start, tuple(weights))
