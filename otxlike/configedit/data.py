"""Data of a workspace: found, checked and split for the user; a new workspace sized to its data.

``build --data-root DIR`` (or ``--train-data-roots`` / ``--val-data-roots``, each a folder or an
annotation file) detects the format and the splits (:func:`otxlike.data.formats.detect`), checks
every split with its format, and writes them to ``data.yaml``. A folder with no split is split by
``--val-split F``: seeded and, where each image has one label, stratified
(``sklearn.model_selection.train_test_split``); the two lists of image ids go to the workspace's
``splits/`` folder and the user's files are never moved.

The data decide one value of ``model.py``: every ``num_classes`` of the model becomes the number
of classes found in the train split. That edit is made at the source level like every other.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from otxlike.configedit.commit import commit
from otxlike.configedit.source import ConfigSource
from otxlike.errors import OtxlikeError
from otxlike.workspace.templates import Template
from otxlike.workspace.workspace import (
    DATA_YAML,
    SPLITS,
    BuildResult,
    Workspace,
    data_yaml_text,
    read_data_yaml,
    scaffold_workspace,
)

SPLITS_DIR = "splits"  # workspace folder of the --val-split lists
SPLIT_SEED = 0


@dataclass
class DataPlan:
    """The data a workspace is given, checked.

    Attributes:
        format: The format's name (data.yaml ``format``).
        entries: Split -> its data.yaml mapping (``data_root`` absolute).
        checked: Split -> :class:`~otxlike.data.formats.SplitData` of the checks.
        split_files: Workspace-relative path -> text of the ``--val-split`` lists to write.
        source: What the user pointed at (for the summary).
        val_split: The held-out fraction, if the data was split here.
    """

    format: str
    entries: dict[str, dict]
    checked: dict = field(default_factory=dict)
    split_files: dict[str, str] = field(default_factory=dict)
    source: str = ""
    val_split: float | None = None

    @property
    def classes(self) -> list[str]:
        return self.checked["train"].classes if "train" in self.checked else next(iter(self.checked.values())).classes


def with_num_classes(model_text: str, num_classes: int) -> str:
    """``model_text`` with every literal ``num_classes`` inside ``model`` set to ``num_classes``.

    A source-level edit (heads keep their comments): ``model.head`` of a classifier,
    ``model.bbox_head`` of ATSS, ``model.roi_head.{bbox,mask}_head`` of Mask R-CNN,
    ``model.decode_head`` of an mmseg EncoderDecoder.
    """
    source = ConfigSource(model_text)
    changed = False
    for path in source.key_paths(("model",), "num_classes"):
        if source.literal(path) not in (None, num_classes):
            source.replace(path, num_classes)
            changed = True
    return source.result() if changed else model_text


def same_classes(found: dict[str, list[str]]) -> None:
    """Refuse splits whose class lists differ (a class folder empty in one split, a class only in val).

    Raises:
        OtxlikeError: Naming the classes each split lacks.
    """
    if "train" not in found:
        return
    for split, classes in found.items():
        if classes != found["train"]:
            only = sorted(set(classes) - set(found["train"]))
            lacks = sorted(set(found["train"]) - set(classes))
            raise OtxlikeError(f"the {split} split's classes differ from train's: "
                               + "; ".join(filter(None, [f"only in {split}: {only}" if only else "",
                                                         f"missing from {split}: {lacks}" if lacks else ""])
                                           or [f"same names in another order: {classes}"]),
                               "every split needs an image of every class (and no other class)")


def _datasets(folder: Path) -> dict[str, dict]:
    """The dataset config of each split's dataloader in ``folder/data_pipeline.py``.

    Raises:
        OtxlikeError: If the file is missing or does not load.
    """
    from mmengine.config import Config

    path = folder / "data_pipeline.py"
    try:
        cfg = Config.fromfile(str(path))
    except Exception as exc:  # mmengine raises FileNotFoundError, SyntaxError, ... for a broken file
        raise OtxlikeError(f"cannot load {path}: {type(exc).__name__}: {exc}".replace("\n", " "),
                           "restore it from .backup/ or from the template") from exc
    return {s: dict((cfg.get(f"{s}_dataloader") or {}).get("dataset") or {}) for s in SPLITS}


def _pick(found: dict[str, dict], split: str, path: Path) -> dict:
    """The entry for ``split`` among the splits detected at a path given for that split.

    Raises:
        OtxlikeError: If the path holds several splits but not this one.
    """
    if split in found:
        return found[split]
    if "all" in found:
        return found["all"]
    if len(found) == 1:
        return next(iter(found.values()))
    raise OtxlikeError(f"{path} holds the splits {sorted(found)}, not one {split} split",
                       "give it as --data-root DIR, or give the folder of one split")


def _split_items(data, fraction: float) -> tuple[list[str], list[str]]:
    """Seeded train / val item lists of a checked split, stratified by label where it has one.

    Raises:
        OtxlikeError: If the fraction is out of range or leaves a side empty.
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < fraction < 1.0:
        raise OtxlikeError(f"--val-split {fraction} must be between 0 and 1", "e.g. --val-split 0.2")
    n_val = round(len(data.items) * fraction)
    if n_val < 1 or n_val >= len(data.items):
        raise OtxlikeError(f"--val-split {fraction} of {len(data.items)} images leaves a split empty",
                           "use more images or another fraction")
    strata = data.strata
    if strata is not None:
        counts = {s: strata.count(s) for s in set(strata)}
        if min(counts.values()) < 2 or n_val < len(counts):
            strata = None  # a class with one image, or fewer val images than classes: plain random
    train, val = train_test_split(data.items, test_size=n_val, random_state=SPLIT_SEED, stratify=strata)
    return sorted(train), sorted(val)


def plan_data(task_formats: tuple[str, ...], folder: Path, *, data_root=None, train_root=None, val_root=None,
              data_format: str | None = None, val_split: float | None = None,
              current: dict | None = None) -> DataPlan | None:
    """Find, split and check the data for a workspace whose files are in ``folder``.

    Args:
        task_formats: The formats the workspace's task reads (:attr:`TaskSpec.data_formats`).
        folder: The workspace (or its staging folder): its data_pipeline.py gives each split's
            dataset config, and ``splits/`` is relative to it.
        data_root: A dataset folder or file holding several splits (``--data-root``).
        train_root: The train split's folder or annotation file (``--train-data-roots``).
        val_root: The val split's folder or annotation file (``--val-data-roots``).
        data_format: Force this format (``--data-format``).
        val_split: Hold out this fraction of a dataset with no split as val (``--val-split``).
        current: The workspace's data.yaml (resolved), whose other splits are kept and checked
            against the new ones; None for a new workspace.

    Returns:
        A :class:`DataPlan`, or None when no data was given.

    Raises:
        OtxlikeError: Conflicting options, data no format recognises, data that fail their
            format's checks, splits whose classes differ.
    """
    from otxlike.data.formats import detect

    if data_root is not None and (train_root is not None or val_root is not None):
        raise OtxlikeError("--data-root cannot be combined with --train-data-roots / --val-data-roots",
                           "give the dataset folder, or one folder per split")
    if data_root is None and train_root is None and val_root is None:
        if data_format is not None or val_split is not None:
            raise OtxlikeError("--data-format and --val-split need --data-root (or --train-data-roots)",
                               "e.g. otxlike build --data-root DATASET --val-split 0.2")
        return None
    current = current or {}
    kept_format = current.get("format") if data_root is None and not (train_root and val_root) else None
    forced = data_format or (kept_format if kept_format in task_formats else None)
    if data_root is not None:
        fmt, found = detect(data_root, task_formats, forced)
        source = str(Path(data_root).expanduser().resolve())
        entries = {s: e for s, e in found.items() if s != "all"}
        if "all" in found and not entries:
            entries = {"train": found["all"]}
    else:
        entries, fmt, source = {}, None, ""
        for split, root in (("train", train_root), ("val", val_root)):
            if root is None:
                continue
            f, found = detect(root, task_formats, forced or (fmt.name if fmt else None))
            fmt, entries[split] = f, _pick(found, split, Path(root))
            source = source or str(Path(root).expanduser().resolve())
        for split in ("train", "val"):
            if split not in entries and (current.get(split) or {}).get("data_root"):
                entries[split] = dict(current[split])
    plan = DataPlan(fmt.name, entries, source=source, val_split=val_split)
    datasets = _datasets(folder)
    if val_split is not None:
        if "val" in entries:
            raise OtxlikeError(f"the data already has a val split ({entries['val']['data_root']}); "
                               "--val-split is for a dataset with no split", "drop --val-split")
        if "train" not in entries:
            raise OtxlikeError("--val-split needs the data to split", "give --data-root DIR")
        whole = fmt.check({k: v for k, v in entries["train"].items() if k != "subset"}, datasets["train"])
        train, val = _split_items(whole, val_split)
        with tempfile.TemporaryDirectory() as tmp:
            for split, items in (("train", train), ("val", val)):
                text = "".join(f"{i}\n" for i in items)
                plan.split_files[f"{SPLITS_DIR}/{split}.txt"] = text
                (Path(tmp) / f"{split}.txt").write_text(text, encoding="utf-8")
                entries[split] = {**entries["train"], "subset": str(Path(tmp) / f"{split}.txt")}
            plan.checked = {s: fmt.check(e, datasets[s]) for s, e in entries.items()}
        for split in ("train", "val"):
            entries[split]["subset"] = f"{SPLITS_DIR}/{split}.txt"
    else:
        if "train" in entries and "val" not in entries and data_root is not None:
            raise OtxlikeError(f"{source} holds no val split",
                               "hold out part of it with --val-split 0.2, or give --val-data-roots DIR")
        plan.checked = {s: fmt.check(e, datasets[s]) for s, e in entries.items()}
    same_classes({s: d.classes for s, d in plan.checked.items()})
    return plan


def _data_yaml(plan: DataPlan, previous: dict | None) -> dict:
    """data.yaml's content for ``plan`` (splits it does not name are kept from ``previous``)."""
    data = {"format": plan.format}
    for split in SPLITS:
        entry = plan.entries.get(split) or ((previous or {}).get(split) if plan.format == (previous or {}).get("format")
                                            else None) or {"data_root": None}
        data[split] = entry
    return data


def create_workspace(
    task: str,
    root: str | Path | None = None,
    template_id: str | None = None,
    train_root: str | Path | None = None,
    val_root: str | Path | None = None,
    *,
    data_root: str | Path | None = None,
    data_format: str | None = None,
    val_split: float | None = None,
) -> BuildResult:
    """Make a new workspace from a task template, its data found, checked and written to data.yaml,
    its ``num_classes`` set from the train split.

    Args:
        task: One of :data:`otxlike.tasks.TASKS`.
        root: Workspace folder; default ``otxlike-workspace-<TASK>``.
        template_id: A template of the task; default the task's default template.
        train_root: Folder or annotation file of the train split (optional; can be set later).
        val_root: Folder or annotation file of the val split (optional).
        data_root: A dataset holding its splits (instead of ``train_root`` / ``val_root``).
        data_format: Force a format instead of detecting it.
        val_split: Fraction of a dataset with no split held out as val.

    Returns:
        :class:`~otxlike.workspace.workspace.BuildResult`; ``data`` is the :class:`DataPlan`.

    Raises:
        OtxlikeError: Unknown task or template, missing or bad data, or ``root`` already exists
            and is not empty. Nothing is left on disk then.
    """
    from otxlike.tasks import get_task

    formats = get_task(task).data_formats
    plans = []

    def size_to_data(staging: Path, template: Template) -> None:
        plan = plan_data(formats, staging, data_root=data_root, train_root=train_root, val_root=val_root,
                         data_format=data_format, val_split=val_split)
        if plan is None:
            return
        plans.append(plan)
        for rel, text in plan.split_files.items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).write_text(text, encoding="utf-8")
        (staging / DATA_YAML).write_text(data_yaml_text(_data_yaml(plan, None)), encoding="utf-8")
        if "train" in plan.checked:
            model_py = staging / "model.py"
            text = with_num_classes(model_py.read_text(encoding="utf-8"), len(plan.classes))
            model_py.write_text(text, encoding="utf-8")

    result = scaffold_workspace(task, root, template_id, prepare=size_to_data)
    return BuildResult(result.root, result.template, result.files, plans[0] if plans else None)


def set_data(ws: Workspace, *, data_root=None, train_root=None, val_root=None, data_format: str | None = None,
             val_split: float | None = None) -> tuple[list[Path], DataPlan]:
    """Point ``data.yaml`` at new data (found and checked as :func:`plan_data` does); a new train
    split also sets ``num_classes`` in model.py. Previous versions go to ``.backup/<time>/``.

    Returns:
        The files written and the :class:`DataPlan`.

    Raises:
        OtxlikeError: If nothing is given, or the data fail detection or checks (nothing is
            written then).
    """
    current = ws.data()
    plan = plan_data(ws.task_spec.data_formats, ws.root, data_root=data_root, train_root=train_root,
                     val_root=val_root, data_format=data_format, val_split=val_split, current=current)
    if plan is None:
        raise OtxlikeError("no data given", "pass --data-root DIR, or --train-data-roots / --val-data-roots")
    for entry in plan.entries.values():  # paths the workspace keeps are stored relative to it
        for key in ("subset", "classes"):
            if entry.get(key) and Path(entry[key]).is_absolute() and Path(entry[key]).is_relative_to(ws.root):
                entry[key] = Path(entry[key]).relative_to(ws.root).as_posix()
    writes = []
    for rel, text in plan.split_files.items():
        (ws.root / rel).parent.mkdir(parents=True, exist_ok=True)
        writes.append((ws.root / rel, text))
    writes.append((ws.root / DATA_YAML, data_yaml_text(_data_yaml(plan, read_data_yaml(ws.root)))))
    if "train" in plan.checked:
        text = ws.model_py.read_text(encoding="utf-8")
        new = with_num_classes(text, len(plan.classes))
        if new != text:
            writes.append((ws.model_py, new))
    details = {"format": plan.format, **{s: e.get("data_root") for s, e in plan.entries.items()}}
    return list(commit(ws, writes, "data", details).files), plan
