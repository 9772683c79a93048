"""The one way a workspace file is changed: validate, back up, write atomically, record.

Every edit of otxlike (``build --backbone``, ``build --head``, new data roots) plans its new file
texts first, then hands them to :func:`commit`, which checks the new ``model.py`` by building the
whole model and running it once (:func:`validate_model_text`), copies the files it replaces to
``.backup/<time>/``, writes each through a temporary file and a rename, and adds one entry to the
manifest's history. Nothing is written when a check fails.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from otxlike.errors import OtxlikeError
from otxlike.fileio import atomic_write_text
from otxlike.workspace.workspace import Workspace, config_scope


@dataclass(frozen=True)
class Committed:
    """What :func:`commit` wrote.

    Attributes:
        files: The files written, in order.
        backup: The folder holding the previous versions of the overwritten files, or None.
    """

    files: tuple[Path, ...]
    backup: Path | None


def is_yaml_target(target: str) -> bool:
    """True if a ``--backbone`` / ``--head`` value names a YAML file rather than a type name:
    it ends in ``.yaml``/``.yml`` or is an existing file."""
    return target.endswith((".yaml", ".yml")) or Path(target).is_file()


def user_file(ws, target: str) -> Path:
    """The file a ``--backbone`` / ``--head`` value names: a relative path is taken from the current
    folder, as the shell would; if no such file is there, from the workspace (so
    ``otxlike build -w WS --backbone backbone.yaml`` edits WS's backbone.yaml). docs/workspace.md.

    Raises:
        OtxlikeError: The file is in neither place.
    """
    path = Path(target).expanduser()
    if path.is_absolute() or path.exists():
        return path
    inside = ws.root / path
    if inside.exists():
        return inside
    raise OtxlikeError(f"{target} exists neither in the current folder ({Path.cwd()}) nor in the workspace ({ws.root})",
                       "pass the file's path, or run 'otxlike build --backbone TYPE' to write backbone.yaml")


def read_typed_entry(path: Path, key: str, example: str, regenerate: str) -> dict:
    """The mapping ``key:`` of a user-edited YAML file (``backbone.yaml``, ``head.yaml``), which
    must hold a string ``type``.

    Args:
        path: The file.
        key: Top-level key, e.g. ``backbone``.
        example: Shown after "with a 'type'" in the error, e.g. ``' such as mmdet.ResNet'``.
        regenerate: The command that writes the file afresh, for the hint.

    Raises:
        OtxlikeError: If the file is missing, not YAML (with the line), or lacks ``key.type``.
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise OtxlikeError(f"cannot read {path} ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise OtxlikeError(f"{path} is not a text file (byte {exc.start} is not UTF-8)",
                           f"pass the YAML file, or write it afresh with '{regenerate}'") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise OtxlikeError(f"{path} is not valid YAML{where}", "fix the file and run again") from exc
    entry = data.get(key) if isinstance(data, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise OtxlikeError(f"{path} must hold a mapping '{key}:' with a 'type'{example}",
                           f"regenerate it with '{regenerate}'")
    return dict(entry)


def dry_run(model, mode: str, input_size: int) -> None:
    """One forward pass of a whole model on a (2, 3, S, S) zero batch, in eval mode.

    Args:
        model: The built model (an mmengine ``BaseModel``).
        mode: The task's :attr:`~otxlike.tasks.TaskSpec.dry_run`: ``predict`` runs mmdet's
            ``predict`` with image metadata (two-stage detectors' RPN needs it), ``tensor`` runs
            ``model(x, mode='tensor')``.
        input_size: S, pixels.
    """
    import torch

    x = torch.zeros(2, 3, input_size, input_size)
    with torch.no_grad():
        if mode == "predict":
            from mmdet.structures import DetDataSample

            shape = (input_size, input_size)
            meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape,
                        scale_factor=(1.0, 1.0))
            model(x, [DetDataSample(metainfo=meta) for _ in range(2)], mode="predict")
        else:
            model(x, mode="tensor")


def validate_model_text(ws: Workspace, text: str, input_size: int, subject: str = "backbone") -> None:
    """Load a new ``model.py`` text with mmengine, build the whole model and run it once.

    Args:
        ws: The workspace (its task picks the dry-run mode).
        text: The new model.py.
        input_size: Side of the dry-run input, pixels.
        subject: What changed (``backbone``, ``head``), for the error message.

    Raises:
        OtxlikeError: If any step fails; the message says which.
    """
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope

    fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".py", dir=ws.root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        cfg = Config.fromfile(tmp)
    except Exception as exc:
        raise OtxlikeError(f"the rewritten model.py does not load: {exc}") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    from otxlike.models.addins import with_addins_cfg

    try:
        with_addins_cfg(cfg)
        with DefaultScope.overwrite_default_scope(config_scope(cfg)):
            model = MODELS.build(cfg.model)
            model.eval()  # not chained: some modules' train() returns None
            dry_run(model, ws.task_spec.dry_run, input_size)
    except OtxlikeError:
        raise  # add-ins say what is wrong themselves (a module path, a kind, a shape)
    except Exception as exc:
        raise OtxlikeError(
            f"the model with the new {subject} does not run: {type(exc).__name__}: {exc}",
            f"nothing was changed; try other {subject} arguments",
        ) from exc


def commit(ws: Workspace, writes: list[tuple[Path, str]], action: str, details: dict | None = None,
           input_size: int | None = None, subject: str = "backbone", **fields) -> Committed:
    """Write new texts of workspace files, safely, and record the change in the manifest.

    Args:
        ws: The workspace.
        writes: ``(path, new_text)`` pairs, written in order.
        action: The history entry's ``action`` (``backbone``, ``head``, ``data``, ...).
        details: More fields of the history entry.
        input_size: If given and ``model.py`` is among ``writes``, its new text is validated at
            this input size (pixels) before anything is written.
        subject: What changed in model.py, for the validation error.
        **fields: Top-level manifest fields to set (e.g. ``backbone='mmdet.RegNet'``).

    Returns:
        :class:`Committed`.

    Raises:
        OtxlikeError: If the new model does not validate (nothing is written then).
    """
    ws.require_writable()
    if input_size is not None:
        for path, text in writes:
            if Path(path) == ws.model_py:
                validate_model_text(ws, text, input_size, subject)
    backup = ws.new_backup_dir()
    for path, text in writes:
        atomic_write_text(path, text, backup)
    ws.record(action, details, **fields)
    return Committed(tuple(Path(p) for p, _ in writes), backup if backup.exists() else None)
