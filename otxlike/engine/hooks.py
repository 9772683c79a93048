"""What a run reports while it runs: :class:`Progress` steps through an mmengine hook, and the
metrics completed where an evaluator leaves them out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Progress:
    """One step of a run, reported to the ``on_progress`` callback.

    Attributes:
        phase: ``check`` (while the data's images are decoded the first time: ``iter`` of
            ``iters_per_epoch`` files), ``start`` (once, before the first iteration), ``train``
            (after each iteration) or ``val`` (after each validation).
        epoch: 1-based epoch.
        max_epochs: Epochs in the run.
        iter: 1-based iteration within the epoch (train), 0 for val.
        iters_per_epoch: Iterations per epoch.
        loss: Training loss of the iteration (train only).
        lr: Learning rate of the iteration (train only).
        metrics: Validation metrics (val only), e.g. ``{'accuracy/top1': 97.2}`` (percent).
        hparams: The run's effective hyper-parameters (start only).
        run_dir: The run folder (start only).
    """

    phase: str
    epoch: int
    max_epochs: int
    iter: int
    iters_per_epoch: int
    loss: float | None = None
    lr: float | None = None
    metrics: dict | None = None
    hparams: dict | None = None
    run_dir: Path | None = None


def progress_hook(on_progress: Callable[[Progress], None | bool] | None):
    """An mmengine ``Hook`` that reports each training iteration and validation to ``on_progress``
    and keeps the last validation metrics in ``last_metrics``. When ``on_progress`` returns True
    for a validation, training ends after it (``train_loop.stop_training``, as mmengine's
    ``EarlyStoppingHook`` stops it: ``mmengine/hooks/early_stopping_hook.py``)."""
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
                stop = on_progress(Progress("val", runner.epoch, runner.max_epochs, 0, len(runner.train_dataloader),
                                            metrics=self.last_metrics))
                if stop is True:
                    runner.train_loop.stop_training = True

    return ProgressHook()


def step_counter():
    """An mmengine ``Hook`` counting optimizer steps taken (``steps``): the first hook to run after
    each ``train_step``, so a later hook that raises does not hide the step just taken."""
    from mmengine.hooks import Hook

    class StepCounter(Hook):
        priority = "HIGHEST"
        steps = 0

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.steps += 1

    return StepCounter()


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


def resumed_schedule_hook():
    """An mmengine ``Hook`` that keeps this run's scheduler bounds over a resumed checkpoint's.

    mmengine's ``Runner.resume`` loads every parameter scheduler's state dict
    (``mmengine/runner/runner.py``; ``_ParamScheduler.load_state_dict`` updates the whole
    ``__dict__``, ``mmengine/optim/scheduler/param_scheduler.py``), so ``end`` and ``T_max`` come
    back as the interrupted run had them and ``train --resume --epochs N`` would run its extra
    epochs at the old schedule's last value. The hook reads the bounds of the schedulers built
    from this run's config in ``before_run`` (in iterations when ``convert_to_iter_based``) and
    puts them back in ``before_train``, which mmengine calls after ``load_or_resume``. A cosine
    then continues from the resumed value to ``eta_min`` at the new last epoch (its chainable
    form scales the rest of the curve).
    """
    from mmengine.hooks import Hook

    def schedulers(runner) -> list:
        found = runner.param_schedulers or []
        return [s for group in found.values() for s in group] if isinstance(found, dict) else list(found)

    class ResumedScheduleHook(Hook):
        """Puts the config's ``end`` / ``T_max`` back after a resume."""

        priority = "VERY_HIGH"
        bounds: list = []

        def before_run(self, runner):
            self.bounds = [(s, {k: getattr(s, k) for k in ("end", "T_max") if hasattr(s, k)})
                           for s in schedulers(runner)]

        def before_train(self, runner):
            for scheduler, values in self.bounds:
                for key, value in values.items():
                    setattr(scheduler, key, value)

    return ResumedScheduleHook()
