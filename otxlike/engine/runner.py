"""``otxlike train`` / ``otxlike eval``: mmengine's Runner on the workspace's config and data.

The workspace config is ``model.py`` merged with ``data_pipeline.py``; the data roots come from
``data.yaml``. Each run writes to ``outputs/<timestamp>_<verb>/`` (mmengine's ``work_dir``: its
log, checkpoints, ``metrics.json``) and ``outputs/latest`` points at the last training run.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from otxlike.errors import OtxlikeError
from otxlike.fileio import atomic_write_text, timestamp
from otxlike.data.formats import get_format
from otxlike.workspace.workspace import Workspace


@dataclass(frozen=True)
class Progress:
    """One step of a run, reported to the ``on_progress`` callback.

    Attributes:
        phase: ``train`` (after each iteration) or ``val`` (after each validation).
        epoch: 1-based epoch.
        max_epochs: Epochs in the run.
        iter: 1-based iteration within the epoch (train), 0 for val.
        iters_per_epoch: Iterations per epoch.
        loss: Training loss of the iteration (train only).
        lr: Learning rate of the iteration (train only).
        metrics: Validation metrics (val only), e.g. ``{'accuracy/top1': 97.2}`` (percent).
    """

    phase: str
    epoch: int
    max_epochs: int
    iter: int
    iters_per_epoch: int
    loss: float | None = None
    lr: float | None = None
    metrics: dict | None = None


@dataclass(frozen=True)
class RunResult:
    """What a train or eval run produced.

    Attributes:
        run_dir: ``outputs/<timestamp>_<verb>/``.
        checkpoint: The checkpoint written (train) or evaluated (eval).
        metrics: Final metrics (validation after the last epoch, or the eval pass).
        seconds: Wall time of the run.
    """

    run_dir: Path
    checkpoint: Path | None
    metrics: dict
    seconds: float


def checkpoint_globals() -> list:
    """The exact non-tensor types found in checkpoints that mmengine's Runner writes.

    Since torch 2.6 ``torch.load`` only unpickles allow-listed globals. mmengine stores its
    ``message_hub`` in every checkpoint: ``HistoryBuffer`` objects holding numpy arrays, scalars
    and their dtype classes, and bound statistics methods pickled as ``getattr(buffer, 'min')``
    (``mmengine/logging/history_buffer.py``). These, and only these, are allowed, and only
    while otxlike itself loads a checkpoint (see :func:`checkpoint_loading`).
    """
    import builtins

    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    multiarray = getattr(np, "_core", None) or np.core
    dtype_classes = [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    return [HistoryBuffer, multiarray.multiarray.scalar, multiarray.multiarray._reconstruct,
            np.ndarray, np.dtype, builtins.getattr, *dtype_classes]


def checkpoint_loading(checkpoint: Path | None = None):
    """A context in which ``torch.load`` accepts :func:`checkpoint_globals`.

    Args:
        checkpoint: If given, it is checked first: a file holding any other global is refused.

    Raises:
        OtxlikeError: If ``checkpoint`` holds globals outside the allowed set.
    """
    import torch

    allowed = checkpoint_globals()
    if checkpoint is not None:
        names = {f"{g.__module__}.{g.__qualname__}" for g in allowed} | {"numpy.core.multiarray.scalar",
                                                                          "numpy.core.multiarray._reconstruct"}
        extra = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(checkpoint))) - names
        if extra:
            raise OtxlikeError(
                f"checkpoint {checkpoint} holds objects otxlike does not load ({', '.join(sorted(extra))})",
                "use a checkpoint written by 'otxlike train'",
            )
    return torch.serialization.safe_globals(allowed)


def _num_classes(model: dict, path: str = "model"):
    """Yield ``(path, value)`` of every ``num_classes`` inside the model dict."""
    for key, value in model.items():
        if key == "num_classes":
            yield f"{path}.{key}", value
        elif isinstance(value, dict):
            yield from _num_classes(value, f"{path}.{key}")


def load_config(ws: Workspace, run_dir: Path, splits: tuple[str, ...]):
    """The workspace's merged mmengine ``Config`` with data roots and ``work_dir`` filled in.

    Raises:
        OtxlikeError: If model.py or data_pipeline.py cannot be loaded, or the data is bad.
    """
    cfg = ws.config()
    fmt = get_format(ws.data().get("format", ""))
    classes = None
    for split in splits:
        loader = cfg.get(f"{split}_dataloader")
        if loader is None:
            raise OtxlikeError(f"data_pipeline.py has no {split}_dataloader", "restore it from the template")
        root = ws.data_root(split)
        found = fmt.check(root, loader.dataset)
        if classes is not None and found != classes:
            raise OtxlikeError(f"{split} classes {found} differ from train classes {classes}",
                               "every split needs the same classes")
        classes = found
        fmt.configure(loader.dataset, cfg.get(f"{split}_evaluator"), root, classes)
    for path, value in _num_classes(cfg.model):
        if value != len(classes):
            raise OtxlikeError(
                f"model.py has {path}={value} but the data has {len(classes)} classes",
                f"set num_classes={len(classes)} in model.py, or rerun 'otxlike build --train-data-roots DIR'",
            )
    cfg.work_dir = str(run_dir)
    return cfg


def _set_epochs(cfg, epochs: int) -> None:
    """Override ``max_epochs``, and scheduler bounds that were equal to it (``end``, ``T_max``)."""
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs
    for sched in cfg.get("param_scheduler") or []:
        for key in ("end", "T_max"):
            if sched.get(key) == old:
                sched[key] = epochs


def _new_run_dir(ws: Workspace, verb: str) -> Path:
    run_dir = ws.outputs / f"{timestamp()}_{verb}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = ws.outputs / f"{timestamp()}_{verb}_{n}"
    run_dir.mkdir(parents=True)
    return run_dir


def _make_runner(cfg, verbose: bool):
    """Build the Runner; mmengine's console log is limited to errors unless ``verbose``.

    The Runner logs its environment and config at construction, so the level is raised for that,
    then its log file (``<run_dir>/<time>/<time>.log``) is set back to INFO.
    """
    from mmengine.logging import MMLogger
    from mmengine.runner import Runner

    if not verbose:
        cfg.log_level = "ERROR"
    try:
        runner = Runner.from_cfg(cfg)
    except Exception as exc:
        raise OtxlikeError(f"mmengine could not set up the run: {type(exc).__name__}: {exc}",
                           "check model.py and data_pipeline.py") from exc
    runner.logger.setLevel(logging.INFO)
    console_level = logging.INFO if verbose else logging.ERROR
    # mmengine also logs through other MMLogger instances (e.g. checkpoint loading): quiet them all
    for logger in MMLogger._instance_dict.values():
        for handler in logger.handlers:
            handler.setLevel(logging.INFO if isinstance(handler, logging.FileHandler) else console_level)
    return runner


@contextlib.contextmanager
def _prints_to_log(runner, verbose: bool):
    """Send what libraries ``print()`` during a run to the run's log file instead of the console:
    mmengine's "Loads checkpoint by local backend ..." (``logger=None`` in
    ``mmengine/runner/checkpoint.py``) and pycocotools' evaluation chatter."""
    if verbose:
        yield
        return
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            runner.logger.info(line)


def _progress_hook(on_progress: Callable[[Progress], None] | None):
    from mmengine.hooks import Hook

    class ProgressHook(Hook):
        """Keeps the last validation metrics and reports every step to ``on_progress``."""

        priority = "LOW"
        last_metrics: dict = {}

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if on_progress is None:
                return
            loss = outputs.get("loss") if outputs else None
            lr = runner.optim_wrapper.get_lr()
            on_progress(Progress(
                "train", runner.epoch + 1, runner.max_epochs, batch_idx + 1, len(runner.train_dataloader),
                float(loss) if loss is not None else None, float(next(iter(lr.values()))[0]),
            ))

        def after_val_epoch(self, runner, metrics=None):
            self.last_metrics = complete_metrics(runner.cfg.get("val_evaluator"), metrics or {})
            if on_progress is not None:
                on_progress(Progress("val", runner.epoch, runner.max_epochs, 0, len(runner.train_dataloader),
                                     metrics=self.last_metrics))

    return ProgressHook()


def complete_metrics(evaluator: dict | None, metrics: dict) -> dict:
    """``metrics`` with COCO mAPs set to 0.0 when the model predicted nothing.

    mmdet's ``CocoMetric`` returns no metric at all when no prediction passes the score threshold
    ("The testing results of the whole dataset is empty", ``mmdet/evaluation/metrics/coco_metric.py``);
    the average precision of an empty prediction set is 0 (COCO's definition), so that is reported.
    """
    metrics = {k: float(v) for k, v in metrics.items()}
    if not metrics and evaluator and evaluator.get("type") == "CocoMetric":
        kinds = evaluator.get("metric", "bbox")
        for kind in [kinds] if isinstance(kinds, str) else kinds:
            metrics[f"coco/{kind}_mAP"] = 0.0
            metrics[f"coco/{kind}_mAP_50"] = 0.0
    return metrics


def _point_latest(ws: Workspace, run_dir: Path) -> None:
    """Make ``outputs/latest`` a relative symlink to ``run_dir`` (replaced atomically)."""
    tmp = ws.outputs / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, ws.outputs / "latest")


def _write_metrics(run_dir: Path, metrics: dict, checkpoint: Path | None) -> None:
    doc = {"metrics": {k: float(v) for k, v in metrics.items()}, "checkpoint": str(checkpoint) if checkpoint else None}
    atomic_write_text(run_dir / "metrics.json", json.dumps(doc, indent=2) + "\n")


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
    run_dir = _new_run_dir(ws, "train")
    try:
        cfg = load_config(ws, run_dir, ("train", "val"))
        if epochs is not None:
            _set_epochs(cfg, epochs)
        runner = _make_runner(cfg, verbose)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    hook = _progress_hook(on_progress)
    runner.register_hook(hook)
    with checkpoint_loading(), _prints_to_log(runner, verbose):
        runner.train()
    metrics = hook.last_metrics
    checkpoint = find_checkpoint(run_dir)
    _write_metrics(run_dir, metrics, checkpoint)
    _point_latest(ws, run_dir)
    ws.record("train", {"run": run_dir.name, "metrics": metrics})
    return RunResult(run_dir, checkpoint, metrics, time.perf_counter() - start)


def find_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint to use from a training run: the best one if saved, else the last one."""
    best = sorted(run_dir.glob("best_*.pth"))
    if best:
        return best[-1]
    last = run_dir / "last_checkpoint"
    if last.is_file():
        path = Path(last.read_text().strip())
        return path if path.is_absolute() else run_dir / path
    ckpts = sorted(run_dir.glob("*.pth"), key=lambda p: p.stat().st_mtime)
    return ckpts[-1] if ckpts else None


def evaluate(ws: Workspace, checkpoint: str | Path | None = None, split: str = "val",
             verbose: bool = False) -> RunResult:
    """Evaluate a checkpoint on ``split`` (``val`` or ``test``; test falls back to val's folder).

    Args:
        ws: The workspace.
        checkpoint: A ``.pth`` file; default: the one :func:`find_checkpoint` picks from
            ``outputs/latest``.
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
    if checkpoint is None:
        latest = ws.outputs / "latest"
        checkpoint = find_checkpoint(latest) if latest.is_dir() else None
        if checkpoint is None:
            raise OtxlikeError("no trained checkpoint in outputs/latest", "run 'otxlike train' first, or pass --checkpoint")
    checkpoint = Path(checkpoint).resolve()
    if not checkpoint.is_file():
        raise OtxlikeError(f"checkpoint {checkpoint} does not exist", "pass an existing .pth file")
    guard = checkpoint_loading(checkpoint)
    start = time.perf_counter()
    run_dir = _new_run_dir(ws, "eval")
    try:
        cfg = load_config(ws, run_dir, ("train", split))  # train: the class list to check against
        if split == "val":
            cfg.test_dataloader, cfg.test_evaluator = cfg.val_dataloader, cfg.val_evaluator
        cfg.load_from = str(checkpoint)
        runner = _make_runner(cfg, verbose)
        with guard, _prints_to_log(runner, verbose):
            metrics = runner.test()
    except BaseException as exc:
        shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(exc, (OtxlikeError, KeyboardInterrupt)):
            raise
        raise OtxlikeError(f"evaluation of {checkpoint.name} failed: {type(exc).__name__}: {exc}",
                           "is the checkpoint from this workspace's model?") from exc
    metrics = complete_metrics(cfg.get("test_evaluator"), metrics)
    _write_metrics(run_dir, metrics, checkpoint)
    ws.record("eval", {"run": run_dir.name, "checkpoint": str(checkpoint), "metrics": metrics})
    return RunResult(run_dir, checkpoint, metrics, time.perf_counter() - start)
