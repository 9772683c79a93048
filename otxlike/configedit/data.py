"""Data roots of a workspace: a new workspace sized to its data, and ``build --train-data-roots``.

The data decide one value of ``model.py``: every ``num_classes`` of the model becomes the number
of classes found in the train split. That edit is made at the source level like every other.
"""

from __future__ import annotations

from pathlib import Path

from otxlike.configedit.commit import commit
from otxlike.configedit.source import ConfigSource
from otxlike.errors import OtxlikeError
from otxlike.workspace.templates import Template
from otxlike.workspace.workspace import (
    DATA_YAML,
    BuildResult,
    Workspace,
    check_root,
    data_yaml_text,
    read_data_yaml,
    scaffold_workspace,
    split_classes,
)


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
                                                         f"missing from {split}: {lacks}" if lacks else ""])),
                               "every split needs an image of every class (and no other class)")


def create_workspace(
    task: str,
    root: str | Path | None = None,
    template_id: str | None = None,
    train_root: str | Path | None = None,
    val_root: str | Path | None = None,
) -> BuildResult:
    """Make a new workspace from a task template, its ``num_classes`` set from the train split.

    Args:
        task: One of :data:`otxlike.tasks.TASKS`.
        root: Workspace folder; default ``otxlike-workspace-<TASK>``.
        template_id: A template of the task; default the task's default template.
        train_root: Folder of the train split (optional; can be set later). Its data are
            checked by the template's format and give the number of classes.
        val_root: Folder of the val split (optional).

    Returns:
        :class:`~otxlike.workspace.workspace.BuildResult`.

    Raises:
        OtxlikeError: Unknown task or template, missing or bad data, or ``root`` already exists
            and is not empty. Nothing is left on disk then.
    """
    def size_to_data(staging: Path, template: Template, roots: dict) -> None:
        found = {s: split_classes(staging, template.data_format, s, r) for s, r in roots.items() if r}
        same_classes(found)
        if roots.get("train"):
            classes = found["train"]
            model_py = staging / "model.py"
            text = with_num_classes(model_py.read_text(encoding="utf-8"), len(classes))
            model_py.write_text(text, encoding="utf-8")

    return scaffold_workspace(task, root, template_id, train_root, val_root, prepare=size_to_data)


def set_data_roots(ws: Workspace, roots: dict[str, str | Path | None]) -> list[Path]:
    """Point ``data.yaml`` at new folders (only the splits given); a new train split also sets
    ``num_classes`` in model.py. Previous versions go to ``.backup/<time>/``.

    Returns:
        The files written.

    Raises:
        OtxlikeError: If a folder does not exist or its data fail the format's checks (nothing is
            written then).
    """
    checked = {s: check_root(s, r) for s, r in roots.items() if r is not None}
    data = read_data_yaml(ws.root)
    classes = {s: split_classes(ws.root, data.get("format", ""), s, r) for s, r in checked.items()}
    kept = {s: (data.get(s) or {}).get("data_root") for s in ("train", "val") if s not in checked}
    same_classes({**classes, **{s: split_classes(ws.root, data.get("format", ""), s, (ws.root / r).resolve())
                                 for s, r in kept.items() if r and (ws.root / r).is_dir()}})
    for split, root in checked.items():
        data.setdefault(split, {})["data_root"] = root
    writes = [(ws.root / DATA_YAML, data_yaml_text(data))]
    if checked.get("train"):
        text = ws.model_py.read_text(encoding="utf-8")
        new = with_num_classes(text, len(classes["train"]))
        if new != text:
            writes.append((ws.model_py, new))
    return list(commit(ws, writes, "data", dict(checked)).files)
