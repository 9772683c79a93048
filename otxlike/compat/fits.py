"""The "fits" check of one backbone on the tasks' templates: the cheap tier of the matrix.

A backbone *fits* a task when, built with the values ``otxlike build --backbone`` writes
(:func:`otxlike.catalog.values.default_values`, presets included, through the provider's
``model_cfg``), it runs one forward at the input size of the task's default template and gives
what the template's neck/heads take: the strides its multi-scale consumer uses
(:func:`otxlike.configedit.adapters.plan_stages`, outputs picked with the provider's
``select_outputs``) and 4-D maps whose channels the consumer can be set to
(:func:`otxlike.configedit.adapters.plan_channel_edits`). It is the first half of the swap,
without building the whole model, training or evaluating: seconds per backbone instead of
minutes (the *verified* tier, :mod:`otxlike.compat.verify`). One build serves every task whose
argument values are the same, and one forward every task of the same input size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from otxlike.catalog.shapes import FeatureShapes
from otxlike.errors import OtxlikeError, one_line


@dataclass(frozen=True)
class TaskContext:
    """What the fits check needs of a task's default template.

    Attributes:
        task: One of :data:`otxlike.tasks.TASKS`.
        scope: The template model's default scope (``mmpretrain``, ``mmdet``, ``mmseg``).
        input_size: Side in pixels of the template's training images (``input_size`` of
            ``data_pipeline.py``): 32 for classification, 128 for the others.
        model: The ``model`` dict of the template's config.
        backbone_defaults: The template's ``backbone_defaults`` (e.g. ``norm_eval: false``).
        old_strides: Output strides of the template's own backbone at ``input_size``, which its
            neck/heads were built for (None if it does not build).
    """

    task: str
    scope: str
    input_size: int
    model: dict
    backbone_defaults: dict
    old_strides: tuple[int, ...] | None


@dataclass(frozen=True)
class Fit:
    """The fits verdict of one backbone on one task.

    Attributes:
        ok: True if the backbone gives what the template's neck/heads take.
        reason: For a failure, one line (what did not build, run or match); None when ``ok``.
        shapes: The outputs the template would read (after picking outputs), when it fits.
        strides: Strides of every output of the backbone at the template's input size, when it
            built and ran (before picking outputs), else None.
    """

    ok: bool
    reason: str | None = None
    shapes: FeatureShapes | None = None
    strides: tuple[int, ...] | None = None


def task_context(task: str, root: Path) -> TaskContext:
    """The :class:`TaskContext` of ``task``'s default template, read from a workspace made
    from it under ``root`` (without data; the folder is left for the caller).

    Raises:
        OtxlikeError: If the template cannot be made or loaded.
    """
    from otxlike.configedit.backbone import old_strides
    from otxlike.configedit.data import create_workspace
    from otxlike.workspace.workspace import Workspace

    folder = Path(root) / f"fits-{task}"
    if not (folder / "model.py").is_file():
        create_workspace(task, folder)
    ws = Workspace.load(folder)
    scope, input_size, model = ws.model_context()
    return TaskContext(task, scope, input_size, model, dict(ws.template.backbone_defaults or {}),
                       old_strides(model, scope, input_size))


def check_fits(backbone: str, contexts: list[TaskContext]) -> dict[str, Fit]:
    """Check whether ``backbone`` fits each task of ``contexts`` (see the module docstring).

    The backbone is built in each template's default scope, as ``build --backbone`` does.
    Argument values differ per task only by the template's ``backbone_defaults`` and, for
    backbones built for one image size (:func:`otxlike.catalog.values.input_size_args`), the
    input size: the backbone is built once per distinct argument set and scope, and run once
    per input size. Outputs dropped by ``select_outputs`` are not measured again: the kept ones are a
    subset of those measured.

    Args:
        backbone: Full name, e.g. ``timm.resnet18``.
        contexts: The tasks' :class:`TaskContext`, from :func:`task_context`.

    Returns:
        ``{task: Fit}``; never raises for a backbone that does not fit (the failure is the verdict).

    Raises:
        OtxlikeError: If the backbone name is unknown.
    """
    from otxlike.catalog.lookup import get_backbone, provider
    from otxlike.catalog.shapes import build_backbone, measure_module

    spec = get_backbone(backbone)
    lib = provider(spec.library)
    modules: dict[str, object] = {}     # argument set (JSON) -> built module or OtxlikeError
    measured: dict[tuple, object] = {}  # (argument set, input size) -> FeatureShapes or OtxlikeError

    def shapes_of(cfg: dict, scope: str, size: int) -> FeatureShapes:
        # otxlike's wrappers (timm, torchvision) have a scoped type and no module types in their
        # arguments: the default scope does not change what they build, one build serves all
        key = ("" if str(cfg.get("type")).startswith("otxlike.") else scope) + json.dumps(cfg, sort_keys=True, default=repr)
        if key not in modules:
            try:
                modules[key] = build_backbone(cfg, scope)
            except OtxlikeError as exc:
                modules[key] = exc
        if (key, size) not in measured:
            module = modules[key]
            try:
                if isinstance(module, OtxlikeError):
                    raise module
                measured[(key, size)] = measure_module(module, cfg.get("type"), size)
            except OtxlikeError as exc:
                measured[(key, size)] = exc
        found = measured[(key, size)]
        if isinstance(found, OtxlikeError):
            raise found
        return found

    out = {}
    for ctx in contexts:
        seen: list = []  # the measured shapes, once the backbone ran
        try:
            out[ctx.task] = _fits_one(spec, lib, ctx, shapes_of, seen)
        except OtxlikeError as exc:
            out[ctx.task] = Fit(False, one_line(exc, 240), strides=seen[0].strides if seen else None)
        except Exception as exc:  # a library's own failure while picking outputs or planning
            out[ctx.task] = Fit(False, one_line(f"{type(exc).__name__}: {exc}", 240),
                                strides=seen[0].strides if seen else None)
    return out


def _fits_one(spec, lib, ctx: TaskContext, shapes_of, seen: list) -> Fit:
    """The swap's planning steps (:func:`otxlike.configedit.backbone.plan_backbone`) for one
    task; every measured shape is appended to ``seen`` (the first: the default outputs)."""
    from otxlike.catalog.values import default_values
    from otxlike.configedit.backbone import plan_backbone

    values, missing = default_values(spec, ctx.backbone_defaults, ctx.input_size)
    if missing:
        return Fit(False, f"needs input: {', '.join(missing)}")
    values.pop("weights", None)  # torchvision builders' weights argument: not part of the shapes

    def measured(cfg, scope, size):  # built in the workspace's scope, as the swap does
        shapes = shapes_of(cfg, scope, size)
        seen.append(shapes)
        return shapes

    plan = plan_backbone(lib, spec, values, ctx.model, ctx.old_strides, ctx.scope, ctx.input_size,
                         keep=ctx.backbone_defaults, shapes_of=measured)
    return Fit(True, None, plan.shapes, seen[0].strides)
