"""A workspace: a folder of plain, editable files made from a template, plus its manifest.

This is the lowest domain layer: it reads the workspace's files, records history in the manifest
and makes new workspaces from templates. It edits no config and runs nothing; the editor
(:mod:`otxlike.configedit`) and the engine (:mod:`otxlike.engine`) stand on it.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import yaml

from otxlike import __version__
from otxlike.errors import OtxlikeError
from otxlike.fileio import atomic_write_text, check_folder_path, current_umask, dump_yaml, locked, timestamp
from otxlike.workspace.templates import TEMPLATE_FILES, Template, get_template

MANIFEST = "workspace.yaml"
LOCK = ".workspace.lock"  # flock target of manifest updates
DATA_YAML = "data.yaml"
BACKBONE_YAML = "backbone.yaml"
HPO_YAML = "hpo.yaml"
SPLITS = ("train", "val", "test")
DEFAULT_INPUT_SIZE = 64  # pixels; used when data_pipeline.py declares no input_size


def default_workspace_dir(task: str) -> Path:
    """``otxlike-workspace-<TASK>`` in the current folder, as OTX names it."""
    return Path(f"otxlike-workspace-{task.upper()}")


@dataclass
class Workspace:
    """An existing workspace folder.

    Attributes:
        root: The folder.
        manifest: Content of ``workspace.yaml`` (task, template, version, backbone, history).
    """

    root: Path
    manifest: dict

    @classmethod
    def load(cls, root: str | Path | None = None) -> "Workspace":
        """Open the workspace at ``root`` (default: the current folder).

        Raises:
            OtxlikeError: If the folder has no readable ``workspace.yaml``.
        """
        root = Path(root or ".").resolve()
        path = root / MANIFEST
        if not path.is_file():
            raise OtxlikeError(
                f"{root} is not an otxlike workspace (no {MANIFEST})",
                "run 'otxlike build --task TASK' first, then cd into the workspace or pass --workspace",
            )
        try:
            manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise OtxlikeError(f"{path} is not valid YAML ({exc})".replace("\n", " ")) from exc
        if not isinstance(manifest, dict) or "task" not in manifest:
            raise OtxlikeError(f"{path} has no 'task'", "restore it from .backup/ or rebuild the workspace")
        return cls(root, manifest)

    def load_custom_modules(self) -> list[str]:
        """Import the workspace's custom backbone/head files (:mod:`otxlike.models.custom`), with the
        workspace first on ``sys.path`` so model.py's ``custom_imports`` finds them.

        Returns:
            Their module names.

        Raises:
            OtxlikeError: If a file is missing or fails to import.
        """
        from otxlike.models.custom import load_workspace_modules

        return load_workspace_modules(self.root, self.manifest)

    def config(self):
        """``model.py`` merged with ``data_pipeline.py``, as an mmengine ``Config``.

        The workspace's custom modules are imported first: model.py's ``custom_imports`` may name
        them.

        Raises:
            OtxlikeError: If a custom module or either file cannot be loaded.
        """
        from mmengine.config import Config

        self.load_custom_modules()
        try:
            cfg = Config.fromfile(str(self.model_py))
            cfg.merge_from_dict(Config.fromfile(str(self.data_pipeline_py)).to_dict())
        except Exception as exc:
            raise OtxlikeError(f"cannot load the workspace config: {exc}".replace("\n", " "),
                               "fix model.py / data_pipeline.py") from exc
        model = cfg.get("model")
        if not isinstance(model, dict) or not isinstance(model.get("type"), str):
            raise OtxlikeError(f"{self.model_py} defines no model = dict(type=...) "
                               f"({'it is missing' if model is None else 'it has no type'})",
                               "model.py must keep the variable 'model'; restore it from .backup/ or the template")
        size = cfg.get("input_size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
            raise OtxlikeError(f"input_size = {size!r} in {self.data_pipeline_py} is not a size in pixels",
                               "set input_size to a positive whole number, e.g. input_size = 32")
        return cfg

    def model_context(self) -> tuple[str, int, dict]:
        """The default scope and ``model`` dict of the config, and ``input_size`` of data_pipeline.py.

        The scope is model.py's ``default_scope`` (``mmengine`` when it sets none), the one
        unscoped types in it resolve in; the input size is the side in pixels of training images
        (:data:`DEFAULT_INPUT_SIZE` when data_pipeline.py declares none).

        Raises:
            OtxlikeError: If either file cannot be loaded by mmengine.
        """
        cfg = self.config()
        return config_scope(cfg), int(cfg.get("input_size", DEFAULT_INPUT_SIZE)), cfg.model.to_dict()

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def task_spec(self):
        """The :class:`~otxlike.tasks.TaskSpec` of the workspace's task, with the template's metric
        keys where the template declares its own (a multi-label classifier).

        Raises:
            OtxlikeError: If the manifest names an unknown task.
        """
        from dataclasses import replace

        from otxlike.tasks import get_task

        spec = get_task(self.task)
        try:
            metrics = self.template.metrics
        except OtxlikeError:
            metrics = None  # a damaged template.yaml: the task's keys
        return replace(spec, metrics=metrics) if metrics else spec

    @property
    def template(self) -> Template:
        """The template metadata saved in the workspace's ``template.yaml``."""
        return Template.from_folder(self.root)

    @property
    def model_py(self) -> Path:
        return self.root / "model.py"

    @property
    def data_pipeline_py(self) -> Path:
        return self.root / "data_pipeline.py"

    @property
    def backbone_yaml(self) -> Path:
        return self.root / BACKBONE_YAML

    def require_writable(self, folder: Path | None = None) -> None:
        """Refuse to start a change of a workspace the user may not write (before any temp file).

        Args:
            folder: The folder that will be written (default: the workspace; ``outputs/`` for runs).

        Raises:
            OtxlikeError: If ``folder`` (or, when it does not exist yet, its parent) is not writable.
        """
        import os

        target = folder or self.root
        existing = target if target.exists() else target.parent
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OtxlikeError(f"{existing} is not writable by this user; nothing was changed",
                               "make it writable (chmod -R u+w), or copy the workspace and use the copy")

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    def new_backup_dir(self) -> Path:
        """``.backup/<timestamp>/``: where files are copied before they are overwritten."""
        return self.root / ".backup" / timestamp()

    def data(self) -> dict:
        """``data.yaml`` as a dict, with paths resolved: each split's ``data_root`` and the files
        the workspace itself keeps (``subset`` lists of ``--val-split``, a ``classes`` file) relative
        to the workspace; the format's own keys (``ann_file``, ``img_prefix`` ...) stay relative to
        the split's ``data_root``.

        Raises:
            OtxlikeError: If the file is missing or malformed.
        """
        path = self.root / DATA_YAML
        data = read_data_yaml(self.root)
        for split in SPLITS:
            entry = data.get(split) or {}
            if not isinstance(entry, dict):
                raise OtxlikeError(f"{path}: '{split}' must be a mapping with a data_root")
            for key in ("data_root", "subset", "classes"):
                if entry.get(key):
                    entry[key] = str((self.root / str(entry[key])).resolve())
            data[split] = entry
        return data

    def split_entry(self, split: str) -> dict:
        """The data.yaml mapping of ``split`` (paths resolved as :meth:`data` does); ``test`` falls
        back to ``val``.

        Raises:
            OtxlikeError: If the split has no root or the folder does not exist.
        """
        data = self.data()
        entry = data[split] if data[split].get("data_root") or split != "test" else data["val"]
        root = entry.get("data_root")
        if not root:
            raise OtxlikeError(
                f"data.yaml has no {split} data_root",
                f"run 'otxlike build --data-root DIR' (or --{split}-data-roots DIR) in the workspace, or edit data.yaml",
            )
        if not Path(root).is_dir():
            raise OtxlikeError(f"{split} data root {root} (from data.yaml) does not exist", "fix data.yaml")
        return entry

    def record(self, action: str, details: dict | None = None, **fields) -> None:
        """Add an entry to the manifest's history (and set top-level ``fields``).

        The manifest is read afresh, changed and written back under a lock
        (:func:`~otxlike.fileio.locked` on ``.workspace.lock``), so commands running at the same
        time (a ``build --backbone`` during a ``train``) never undo each other's entries.
        """
        path = self.root / MANIFEST
        with locked(self.root / LOCK):
            try:
                current = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                current = None
            manifest = current if isinstance(current, dict) and "task" in current else self.manifest
            manifest.update(fields)
            entry = {"time": datetime.now().isoformat(timespec="seconds"), "action": action}
            if details:
                entry.update(details)
            manifest.setdefault("history", []).append(entry)
            atomic_write_text(path, dump_yaml(manifest))
        self.manifest = manifest


def config_scope(cfg) -> str:
    """The default scope of a loaded workspace config (``mmengine`` when it sets none)."""
    return cfg.get("default_scope") or "mmengine"


def hpo_yaml_text(template: Template) -> str:
    """The text of a new workspace's ``hpo.yaml``: what ``otxlike hpo`` tunes (docs/hpo.md).

    The metric is the template's first metric key, else its task's main one (all of them are
    higher-is-better, :class:`~otxlike.tasks.TaskSpec`); the search space is the template's
    ``hpo_space``. :mod:`otxlike.hpo.config` reads and checks the file.
    """
    from otxlike.tasks import get_task

    metric = template.metrics[0] if template.metrics else get_task(template.task).metric
    header = (
        "# hpo.yaml: what 'otxlike hpo' tunes and how (docs/hpo.md). Edit freely: 'otxlike hpo' checks it\n"
        "# before the first trial. Each trial is one 'otxlike train' of this workspace with the values below.\n"
        "# metric / direction: the validation metric a trial is judged by (reported to the pruner after\n"
        "#   every epoch; the trial's value is its last validation's).\n"
        "# n_trials: trials in the study, every process together (a resumed study counts those done);\n"
        "# time_ratio: stop starting trials once their total time reaches time_ratio x the baseline's.\n"
        "# baseline: trial 0 trains model.py as it is, the value to beat (and time_ratio's unit).\n"
        "# pruner: hyperband | successive_halving | median | none; sampler_seed: of optuna's TPE sampler.\n"
        "# search_space: 'otxlike train' flags (lr, batch_size, optimizer, scheduler, warmup, epochs, ...)\n"
        "#   or any dotted config key; type: loguniform | uniform | float | int | categorical.\n"
    )
    doc = {"metric": metric, "direction": "maximize", "n_trials": 8, "time_ratio": None, "baseline": True,
           "pruner": "hyperband", "sampler_seed": 0, "search_space": template.hpo_space}
    return header + dump_yaml(doc)


def data_yaml_text(data: dict) -> str:
    """The text of ``data.yaml`` for ``data`` (format and per-split entries), with its comment header."""
    header = (
        "# data.yaml: where this workspace's data is ('otxlike find --data-formats' lists the formats).\n"
        "# data_root is absolute or relative to this file; a split's other paths (ann_file, img_prefix,\n"
        "# ...) are relative to its data_root. test falls back to val when its data_root is empty.\n"
    )
    return header + dump_yaml(data)


def read_data_yaml(root: Path) -> dict:
    """``data.yaml`` of the workspace at ``root`` as written (roots not resolved).

    Raises:
        OtxlikeError: If the file is missing, not YAML, or not a mapping.
    """
    path = Path(root) / DATA_YAML
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise OtxlikeError(f"cannot read {path} ({exc})".replace("\n", " "),
                           "restore it from .backup/, or run 'otxlike build --data-root DIR'") from exc
    if not isinstance(data, dict):
        raise OtxlikeError(f"{path} must be a mapping (format, train, val, test), not a {type(data).__name__}",
                           "restore it from .backup/, or run 'otxlike build --data-root DIR'")
    return data


@dataclass(frozen=True)
class BuildResult:
    """What ``create_workspace`` made.

    Attributes:
        root: The workspace folder.
        template: The template used.
        files: Files written, in order.
        data: What was found in the data given (a :class:`otxlike.configedit.data.DataPlan`), or None.
    """

    root: Path
    template: Template
    files: tuple[Path, ...]
    data: object | None = None


def scaffold_workspace(
    task: str,
    root: str | Path | None = None,
    template_id: str | None = None,
    prepare: Callable[[Path, Template], None] | None = None,
) -> BuildResult:
    """Make a new workspace from a task template: its files as the template has them.

    The files are written to a temporary folder beside ``root`` and renamed into place at the end,
    so a failure leaves nothing half-made. An existing non-empty folder is never touched.
    :func:`otxlike.configedit.data.create_workspace` adds the data-dependent edits through
    ``prepare``.

    Args:
        task: One of :data:`otxlike.tasks.TASKS`.
        root: Workspace folder; default ``otxlike-workspace-<TASK>``.
        template_id: A template of the task; default the task's default template.
        prepare: Called as ``prepare(staging_folder, template)`` once every file is in the
            staging folder, before it is renamed into place (it writes data.yaml's data). Whatever
            it raises aborts the build.

    Returns:
        A :class:`BuildResult`.

    Raises:
        OtxlikeError: Unknown task or template, or ``root`` already exists and is not empty.
    """
    template = get_template(task, template_id)
    root = Path(root) if root is not None else default_workspace_dir(task)
    check_folder_path(root, "--workspace")
    if root.exists() and any(root.iterdir()):
        what = "an otxlike workspace" if (root / MANIFEST).is_file() else "not empty"
        raise OtxlikeError(
            f"{root} already exists and is {what}; nothing was changed",
            "pick another --workspace, or run 'otxlike build --backbone ...' inside it",
        )
    root = root.resolve()
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        for name in TEMPLATE_FILES:
            shutil.copy2(template.path / name, staging / name)
        data = {"format": template.data_format, **{s: {"data_root": None} for s in SPLITS}}
        (staging / DATA_YAML).write_text(data_yaml_text(data), encoding="utf-8")
        manifest = {
            "otxlike_version": __version__,
            "task": task,
            "template": template.id,
            "created": datetime.now().isoformat(timespec="seconds"),
            "backbone": None,
            "history": [{"time": datetime.now().isoformat(timespec="seconds"), "action": "build", "template": template.id}],
        }
        (staging / MANIFEST).write_text(dump_yaml(manifest), encoding="utf-8")
        (staging / HPO_YAML).write_text(hpo_yaml_text(template), encoding="utf-8")
        if prepare is not None:
            prepare(staging, template)
        staging.chmod(0o777 & ~current_umask())  # mkdtemp makes it 0700
        if root.exists():
            root.rmdir()  # empty, checked above
        staging.rename(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = (MANIFEST, *TEMPLATE_FILES, DATA_YAML, HPO_YAML)
    return BuildResult(root=root, template=template, files=tuple(root / f for f in files))
