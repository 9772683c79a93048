"""Discover task templates: ``templates/<task>/<id>/{template.yaml, model.py, data_pipeline.py}``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from otxlike.errors import OtxlikeError
from otxlike.tasks import TASKS, get_task

TEMPLATE_FILES = ("template.yaml", "model.py", "data_pipeline.py")


def templates_root() -> Path:
    """The folder holding the templates: packaged as ``otxlike/_templates`` in a wheel, or the
    repository's top-level ``templates/`` in an editable install."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "_templates"
    return packaged if packaged.is_dir() else here.parent / "templates"


@dataclass(frozen=True)
class Template:
    """A task template: the files a new workspace starts from.

    Attributes:
        id: Unique id, e.g. ``cls_resnet18``.
        name: Human-readable name.
        task: One of :data:`otxlike.tasks.TASKS`.
        library: The OpenMMLab library whose runner scope the model uses (``mmpretrain``...).
        summary: What the template is for.
        data_format: Dataset format of ``data.yaml`` (``imagenet``: one folder per class).
        default: Whether ``build --task`` picks it when no ``--template`` is given.
        path: The template folder.
        backbone_defaults: Argument values applied to a swapped-in backbone that takes them.
        metrics: Metric keys of the template's evaluators when they are not the task's (the
            multi-label classifier's ``multi-label/mAP`` ...), the main one first; None: the task's.
        hpo_space: The search space a new workspace's ``hpo.yaml`` starts with (``otxlike hpo``,
            docs/hpo.md): parameter name -> ``{type, low, high}`` or ``{type, choices}``.
    """

    id: str
    name: str
    task: str
    library: str
    summary: str
    data_format: str
    default: bool
    path: Path
    backbone_defaults: dict = field(default_factory=dict)
    metrics: tuple[str, ...] | None = None
    hpo_space: dict = field(default_factory=dict)

    @classmethod
    def from_folder(cls, folder: Path) -> "Template":
        """Read ``folder/template.yaml``.

        Raises:
            OtxlikeError: If the file is missing or malformed, its task is unknown or its data
                format is not one of the task's.
        """
        path = folder / "template.yaml"
        try:
            meta = yaml.safe_load(path.read_text(encoding="utf-8"))
            meta["task"], meta["data_format"], meta["id"], meta["name"], meta["library"]  # noqa: B018
        except (OSError, yaml.YAMLError, TypeError, KeyError) as exc:
            raise OtxlikeError(f"{path} is missing or malformed ({type(exc).__name__}: {exc})".replace("\n", " "),
                               "restore it from .backup/ or from the template folder ('otxlike find --template')") from exc
        task = get_task(meta["task"])
        if meta["data_format"] not in task.data_formats:
            raise OtxlikeError(f"template {folder} has data_format '{meta['data_format']}', which task "
                               f"{task.name} does not read", f"use one of: {', '.join(task.data_formats)}")
        return cls(
            id=meta["id"], name=meta["name"], task=meta["task"], library=meta["library"],
            summary=" ".join(str(meta.get("summary", "")).split()), data_format=meta["data_format"],
            default=bool(meta.get("default", False)), path=folder,
            backbone_defaults=dict(meta.get("backbone_defaults") or {}),
            metrics=tuple(meta["metrics"]) if meta.get("metrics") else None,
            hpo_space=dict(meta.get("hpo_space") or {}),
        )


def list_templates(task: str | None = None) -> list[Template]:
    """Every template (of ``task`` if given), default ones first, then by id."""
    found = [
        Template.from_folder(p.parent)
        for p in sorted(templates_root().glob("*/*/template.yaml"))
    ]
    found = [t for t in found if task is None or t.task == task]
    return sorted(found, key=lambda t: (TASKS.index(t.task), not t.default, t.id))


def get_template(task: str, template_id: str | None = None) -> Template:
    """The template ``template_id`` of ``task``, or the task's default template.

    Raises:
        OtxlikeError: If the task is unknown, has no template, or has none called ``template_id``.
    """
    get_task(task)
    candidates = list_templates(task)
    if template_id is not None:
        for t in candidates:
            if t.id == template_id:
                return t
        ids = ", ".join(t.id for t in candidates) or "none"
        raise OtxlikeError(f"task '{task}' has no template '{template_id}'", f"templates of {task}: {ids}")
    if not candidates:
        raise OtxlikeError(f"no template for task '{task}' yet", "see 'otxlike find --template'")
    return candidates[0]
