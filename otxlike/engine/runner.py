"""mmengine's Runner as otxlike runs it: built from a run config, with mmengine's console output
kept in the run's log file unless asked for."""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from otxlike.errors import OtxlikeError


@dataclass(frozen=True)
class RunResult:
    """What a train or eval run produced.

    Attributes:
        run_dir: ``outputs/<timestamp>_<verb>/``.
        checkpoint: The checkpoint written (train) or evaluated (eval).
        metrics: Final metrics (validation after the last epoch, or the eval pass).
        seconds: Wall time of the run.
        weights: :class:`~otxlike.engine.weights.WeightsStatus` of each pretrained checkpoint
            (train only).
        curves: ``curves.png`` of the run (train only; None if nothing was logged).
    """

    run_dir: Path
    checkpoint: Path | None
    metrics: dict
    seconds: float
    weights: tuple = ()
    curves: Path | None = None


def make_runner(cfg, verbose: bool):
    """Build the Runner; mmengine's console log is limited to errors unless ``verbose``.

    The Runner logs its environment and config at construction, so the level is raised for that,
    then its log file (``<run_dir>/<time>/<time>.log``) is set back to INFO. A config with add-ins
    (model.py's ``addins``) has its model wrapped in ``otxlike.WithAddins`` first
    (:func:`otxlike.models.addins.with_addins_cfg`), so the Runner builds the model with its add-ins
    and freezing before it builds the optimizer.
    """
    from mmengine.logging import MMLogger
    from mmengine.runner import Runner

    from otxlike.models.addins import with_addins_cfg

    with_addins_cfg(cfg)
    if not verbose:
        cfg.log_level = "ERROR"
    try:
        runner = Runner.from_cfg(cfg)
    except OtxlikeError:
        raise
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
def prints_to_log(runner, verbose: bool):
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
