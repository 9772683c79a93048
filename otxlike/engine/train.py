"""``otxlike train``: mmengine's Runner on the workspace's config and data.

The workspace config is ``model.py`` merged with ``data_pipeline.py``; the data roots come from
``data.yaml``. Each run writes to ``outputs/<timestamp>_train/`` (:mod:`otxlike.workspace.runs`).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Callable

from otxlike.engine.checkpoints import checkpoint_loading
from otxlike.engine.config import load_config
from otxlike.engine.hooks import Progress, progress_hook, resumed_schedule_hook, step_counter
from otxlike.engine.curves import plot_curves
from otxlike.engine.distributed import distribute, from_rank0, norm_sync_hook, world
from otxlike.engine.hparams import HParams, apply, apply_start, effective
from otxlike.engine.runner import RunResult, make_runner, prints_to_log
from otxlike.data.images import image_check
from otxlike.engine.weights import preflight
from otxlike.errors import OtxlikeError, one_line
from otxlike.fileio import atomic_write_text, dump_yaml
from otxlike.workspace.runs import find_checkpoint, new_run_dir, point_latest, resumable_run, saved_overrides, write_metrics
from otxlike.workspace.workspace import Workspace, config_scope


def train(ws: Workspace, epochs: int | None = None, on_progress: Callable[[Progress], None | bool] | None = None,
          verbose: bool = False, hparams: HParams | None = None, resume: bool = False,
          run_dir: Path | None = None) -> RunResult:
    """Train the workspace's model on its train split, validating on val.

    Args:
        ws: The workspace.
        epochs: Override of ``max_epochs`` for this run (must be >= 1); the same as
            ``hparams.epochs``, which it replaces when given.
        on_progress: Called once with the effective hyper-parameters and the fate of the
            pretrained weights (phase ``start``), then after every iteration and validation;
            returning True from a validation ends the run after it, as early stopping does.
        verbose: Also show mmengine's own log lines on the console.
        hparams: Overrides of model.py's training settings for this run
            (:class:`~otxlike.engine.hparams.HParams`); the effective values are written to
            ``<run_dir>/hparams.yaml``.
        resume: Continue the newest interrupted run (:func:`~otxlike.workspace.runs.resumable_run`)
            in its own folder, with mmengine's ``resume=True`` (model, optimizer, schedulers and
            epoch from its last checkpoint). Its hyper-parameters are reused; ``epochs`` may
            extend it.
        run_dir: An empty folder to run in instead of a new ``outputs/<time>_train/``: a run
            that is part of something larger (an ``otxlike hpo`` trial). Its caller owns it:
            ``outputs/latest`` is not moved, the manifest's history gets no entry, and a run
            that fails before its first step leaves the folder in place.

    In one process of a multi-process run (:mod:`otxlike.engine.distributed`, started by
    :func:`otxlike.engine.launch.launch_train`) rank 0 alone creates and writes the run folder,
    ``metrics.json``, the curves and the workspace history; a failure during training is left to
    the launcher, which sees what became of every rank.

    Returns:
        :class:`RunResult` with the best checkpoint (``save_best``) or the last one, the last
        validation metrics and what became of the pretrained weights (also in ``metrics.json``:
        ``weights`` maps each module to its checkpoint, or null for random initialisation).

    Raises:
        OtxlikeError: Bad hyper-parameters, config or data (checked before training starts; no
            run folder is left then), or ``resume`` with no interrupted run.
    """
    hp = hparams or HParams()
    own = run_dir is None  # a run folder of its own: removed on an early failure, then outputs/latest
    if resume and not own:
        raise OtxlikeError("resume continues a run in its own folder; it takes no run_dir")
    rank, world_size = world()
    if resume:
        if hp != HParams(epochs=hp.epochs):
            raise OtxlikeError("--resume continues a run with its own hyper-parameters; only --epochs can change",
                               "drop the other flags, or start a new run without --resume")
        run_dir = from_rank0(lambda: resumable_run(ws))
        if run_dir is None:
            raise OtxlikeError("no interrupted training run to resume in outputs/",
                               "run 'otxlike train' (a run stopped after its first checkpoint can be resumed)")
        hp = HParams.from_json(saved_overrides(run_dir))
    if epochs is not None:
        hp = dataclasses.replace(hp, epochs=epochs)
    hp.check()
    start = time.perf_counter()
    if own and not resume:
        run_dir = from_rank0(lambda: new_run_dir(ws, "train"))
    try:
        def checking(done: int, total: int, folder: Path) -> None:
            if on_progress is not None:
                on_progress(Progress("check", 0, 0, done, total))

        with image_check(hp.skip_bad_images, checking) as checked:
            cfg = load_config(ws, run_dir, ("train", "val", "test"))  # test: the saved config runs alone
        device = apply(cfg, hp, ws.task_spec, config_scope(cfg))
        weights = preflight(cfg.model, hp.weights)
        origin = apply_start(cfg, hp, weights)
        used = {**effective(cfg, hp, device, weights), **origin, "skipped_images": checked.skipped,
                **distribute(cfg, device)}
        overrides = hp.to_json()
        if resume:
            cfg.resume, cfg.load_from = True, None  # mmengine finds <work_dir>/last_checkpoint
        runner = make_runner(cfg, verbose)
        used["params"] = param_counts(runner.model)
        if rank == 0:
            atomic_write_text(run_dir / "hparams.yaml", dump_yaml({**used, "overrides": overrides}))
    except BaseException:
        if own and not resume and rank == 0:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if on_progress is not None:
        on_progress(Progress("start", 0, used["epochs"], 0, 0, hparams=used, run_dir=run_dir))
    hook, counter = progress_hook(on_progress), step_counter()
    runner.register_hook(hook)
    runner.register_hook(counter)
    if world_size > 1:
        runner.register_hook(norm_sync_hook())
    if resume:
        runner.register_hook(resumed_schedule_hook())
    try:
        with checkpoint_loading(), prints_to_log(runner, verbose):
            runner.train()
    except BaseException as exc:
        if world_size == 1:
            failed(ws, run_dir, exc, counter.steps, hook.last_metrics, resume, own)
        raise
    metrics = hook.last_metrics
    if rank != 0:
        return RunResult(run_dir, None, metrics, time.perf_counter() - start, tuple(weights))
    checkpoint = find_checkpoint(run_dir)
    write_metrics(run_dir, metrics, checkpoint, weights={w.where: w.checkpoint if w.loaded else None
                                                         for w in weights})
    curves = plot_curves(run_dir, used["eval_key"] if used["eval_key"] not in (None, "auto") else ws.task_spec.metric)
    if own:
        point_latest(ws, run_dir)
        ws.record("train", {"run": run_dir.name, "metrics": metrics, "hparams": used})
    return RunResult(run_dir, checkpoint, metrics, time.perf_counter() - start, tuple(weights), curves)


def param_counts(model) -> dict:
    """``{'trainable': n, 'total': n, 'percent': p}`` of a built model (numbers of scalars; the model
    under a DDP wrapper is counted). With add-ins (docs/addins.md) only they and what they leave
    unfrozen are trainable."""
    from otxlike.models.addins import count_params

    trainable, total = count_params(getattr(model, "module", model))
    return {"trainable": trainable, "total": total, "percent": round(100.0 * trainable / max(total, 1), 5)}


def failed(ws: Workspace, run_dir: Path, exc: BaseException, steps: int, metrics: dict, resume: bool,
           own: bool = True) -> None:
    """Leave the workspace as promised after a run stopped on ``exc`` (issue 11, docs/errors.md).

    Before the first optimizer step nothing was trained: a new run folder is removed. After it,
    the run folder stays with ``metrics.json`` saying ``status: failed``, the reason and the step
    count (``train --resume`` continues it from its last checkpoint), and the history gets an
    entry (``steps``: optimizer steps taken, ``metrics``: the last validation's). An interrupt
    (Ctrl-C) is then re-raised as it is. A caller's run folder (``own`` False) is neither
    removed nor recorded in the history.

    Raises:
        OtxlikeError: Saying when the run failed, why, and what is left (unless ``exc`` is one
            already or an interrupt, which the caller re-raises).
    """
    interrupted = isinstance(exc, KeyboardInterrupt)
    reason = "interrupted (Ctrl-C)" if interrupted else one_line(f"{type(exc).__name__}: {exc}", 300)
    if steps == 0 and not resume:
        if own:
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(exc, OtxlikeError) or interrupted:
            return
        raise OtxlikeError(f"training failed before its first step: {reason}",
                           "check data_pipeline.py and model.py; --debug shows the traceback") from exc
    write_metrics(run_dir, metrics, find_checkpoint(run_dir), status="failed", reason=reason, steps=steps)
    if own:
        ws.record("train", {"run": run_dir.name, "status": "failed", "reason": reason, "steps": steps})
    if interrupted:
        return
    raise OtxlikeError(f"training failed after {steps} steps: {reason}; {run_dir} is kept, marked failed "
                       "in its metrics.json", "'otxlike train --resume' continues it from its last checkpoint, "
                       "if it saved one; --debug shows the traceback") from exc
