"""Run folders of a workspace: ``outputs/<timestamp>_<verb>/`` (mmengine's ``work_dir``) with the
run's log, checkpoints and ``metrics.json``; ``outputs/latest`` points at the last training run."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

from otxlike.fileio import atomic_write_text, current_umask, timestamp
from otxlike.workspace.workspace import Workspace


def new_run_dir(ws: Workspace, verb: str) -> Path:
    """A new empty ``outputs/<timestamp>_<verb>[_n]/`` folder.

    Raises:
        OtxlikeError: If ``outputs/`` cannot be written (:meth:`Workspace.require_writable`).
    """
    ws.require_writable(ws.outputs)
    run_dir = ws.outputs / f"{timestamp()}_{verb}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = ws.outputs / f"{timestamp()}_{verb}_{n}"
    run_dir.mkdir(parents=True)
    return run_dir


@contextlib.contextmanager
def run_dir_or_nothing(ws: Workspace, verb: str, failure: str, hint: str):
    """Yield a :func:`new_run_dir`; if the block fails it is removed, and an exception that is not
    an :class:`~otxlike.errors.OtxlikeError` becomes one: ``"<failure>: <type>: <message>"`` with
    ``hint``."""
    from otxlike.errors import OtxlikeError

    run_dir = new_run_dir(ws, verb)
    try:
        yield run_dir
    except BaseException as exc:
        shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(exc, (OtxlikeError, KeyboardInterrupt)):
            raise
        raise OtxlikeError(f"{failure}: {type(exc).__name__}: {exc}", hint) from exc


@dataclasses.dataclass
class Stage:
    """The temp folder of :func:`staged_dir` (``path``) and, once renamed, its ``final`` path."""

    path: Path
    final: Path | None = None


@contextlib.contextmanager
def staged_dir(parent: Path, name: str):
    """Yield a :class:`Stage`: a hidden temp folder in ``parent``, renamed to ``parent/name``
    (``name_2``, ... if taken) when the block succeeds. On any error the temp folder is removed,
    so nothing half-written is ever found under ``name``."""
    parent.mkdir(parents=True, exist_ok=True)
    if not os.access(parent, os.W_OK | os.X_OK):
        from otxlike.errors import OtxlikeError

        raise OtxlikeError(f"{parent} is not writable by this user; nothing was changed",
                           "make it writable (chmod -R u+w), or pass another output folder")
    stage = Stage(Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=parent)))
    os.chmod(stage.path, 0o777 & ~current_umask())  # mkdtemp makes it 0700; a new folder follows the umask
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage.path, ignore_errors=True)
        raise
    final, n = parent / name, 1
    while final.exists():
        n += 1
        final = parent / f"{name}_{n}"
    os.rename(stage.path, final)
    stage.final = final


def staged_run_dir(ws: Workspace, verb: str):
    """:func:`staged_dir` for ``outputs/<timestamp>_<verb>``."""
    return staged_dir(ws.outputs, f"{timestamp()}_{verb}")


def resumable_run(ws: Workspace) -> Path | None:
    """The newest ``outputs/*_train*`` folder that mmengine can resume: it has a
    ``last_checkpoint`` (written by ``CheckpointHook`` after each save) naming an existing file,
    and no ``metrics.json`` (the run was killed) or one with ``status: failed`` (it stopped on an
    error, :func:`otxlike.engine.train.train`)."""
    runs = sorted((d for d in ws.outputs.glob("*_train*") if d.is_dir() and not d.is_symlink()),
                  key=lambda d: d.stat().st_mtime, reverse=True) if ws.outputs.is_dir() else []
    for run in runs:
        last = run / "last_checkpoint"
        if not last.is_file() or (run / "metrics.json").exists() and not run_failed(run):
            continue
        path = Path(last.read_text().strip())
        if (path if path.is_absolute() else run / path).is_file():
            return run
    return None


def saved_overrides(run_dir: Path) -> dict:
    """The ``otxlike train`` flags a run was started with: ``overrides`` of its ``hparams.yaml``
    (:meth:`otxlike.engine.hparams.HParams.to_json`), or {} if it has none.

    Raises:
        OtxlikeError: ``hparams.yaml`` cannot be read or is not YAML.
    """
    import yaml

    from otxlike.errors import OtxlikeError

    path = run_dir / "hparams.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise OtxlikeError(f"{path} cannot be read ({type(exc).__name__})",
                           "start a new run without --resume") from exc
    return (doc.get("overrides") if isinstance(doc, dict) else None) or {}


def run_failed(run_dir: Path) -> bool:
    """True if the run's metrics.json says it stopped on an error (``status: failed``)."""
    try:
        return json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")).get("status") == "failed"
    except (OSError, ValueError, AttributeError):
        return False


def point_latest(ws: Workspace, run_dir: Path) -> None:
    """Make ``outputs/latest`` a relative symlink to ``run_dir`` (replaced atomically)."""
    tmp = ws.outputs / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, ws.outputs / "latest")


def write_metrics(run_dir: Path, metrics: dict, checkpoint: Path | None, **extra) -> None:
    """``<run_dir>/metrics.json``: the metrics (floats), the checkpoint they belong to, and
    ``extra`` fields (e.g. ``weights``: which pretrained checkpoint each module started from)."""
    doc = {"metrics": {k: float(v) for k, v in metrics.items()}, "checkpoint": str(checkpoint) if checkpoint else None,
           **extra}
    atomic_write_text(run_dir / "metrics.json", json.dumps(doc, indent=2) + "\n")


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


def latest_checkpoint(ws: Workspace) -> Path | None:
    """The checkpoint :func:`find_checkpoint` picks from ``outputs/latest``, or None."""
    latest = ws.outputs / "latest"
    return find_checkpoint(latest) if latest.is_dir() else None


def pick_checkpoint(ws: Workspace, checkpoint: str | Path | None) -> Path:
    """The checkpoint a command was given, resolved: a ``.pth`` file, a run folder (its
    :func:`find_checkpoint`), or None for :func:`latest_checkpoint`.

    Raises:
        OtxlikeError: Nothing trained yet, a path that does not exist, or a folder without a
            checkpoint.
    """
    from otxlike.errors import OtxlikeError

    if checkpoint is None:
        found = latest_checkpoint(ws)
        if found is None:
            raise OtxlikeError("no trained checkpoint in outputs/latest", "run 'otxlike train' first, or pass --checkpoint")
        return Path(found).resolve()
    path = Path(checkpoint).resolve()
    if path.is_dir():
        found = find_checkpoint(path)
        if found is None:
            raise OtxlikeError(f"{path} is a folder without a checkpoint",
                               "pass a .pth file, or a training run folder (outputs/<time>_train)")
        return Path(found).resolve()
    if not path.is_file():
        raise OtxlikeError(f"checkpoint {path} does not exist", "pass an existing .pth file or a training run folder")
    return path
