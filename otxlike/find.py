"""``otxlike find``: templates, backbones of libraries, or one backbone in detail.

:func:`find` returns one view object per thing shown (:class:`TemplatesView`,
:class:`BackboneList`, :class:`BackboneDetail`); the CLI renders each as a table, and each
gives its part of the ``--json`` document (``docs/json.md``) through ``to_json()``.

A backbone is listed for a task when the shipped compatibility matrix (``make compat``,
:mod:`otxlike.compat.matrix`) says it is *verified* for it (swap, train, eval:
:mod:`otxlike.compat.verify`) or, not checked end to end, that it *fits* (built with the values
``build --backbone`` writes, one forward at the template's input size, strides and channels the
template's neck/heads take: :mod:`otxlike.compat.fits`); ``verified_only`` keeps the former.
Reading the matrix and the backbone index imports no library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from otxlike.catalog.shapes import FeatureShapes
from otxlike.catalog.spec import BackboneSpec
from otxlike.errors import OtxlikeError
from otxlike.models.features import PROBE_SIZE
from otxlike.tasks import TASKS, get_task
from otxlike.workspace.templates import Template

JSON_VERSION = 1


@dataclass(frozen=True)
class TemplatesView:
    """The task templates, and the backbone libraries one can list.

    Attributes:
        templates: The templates (of one task, if asked), default ones first.
        libraries: Backbone library names, in listing order.
        suggest_libraries: Whether the view is ``find`` with no arguments (the table is followed
            by the list of libraries).
    """

    templates: tuple[Template, ...]
    libraries: tuple[str, ...]
    suggest_libraries: bool = False

    def to_json(self) -> dict:
        return {"templates": [{"task": t.task, "id": t.id, "name": t.name, "library": t.library,
                               "default": t.default, "path": str(t.path)} for t in self.templates],
                "libraries": list(self.libraries)}


@dataclass(frozen=True)
class DataFormatsView:
    """The data formats each task reads (:attr:`otxlike.tasks.TaskSpec.data_formats`).

    Attributes:
        rows: ``(task, format name, summary, layout)`` in task order, the templates' format first.
    """

    rows: tuple[tuple[str, str, str, str], ...]

    def to_json(self) -> dict:
        return {"data_formats": [{"task": t, "format": f, "summary": s, "layout": lay} for t, f, s, lay in self.rows]}


def data_formats(task: str | None = None) -> DataFormatsView:
    """The formats of ``task`` (every task when None), as :class:`DataFormatsView`.

    Raises:
        OtxlikeError: Unknown task.
    """
    from otxlike.data.formats import FORMATS

    tasks = [get_task(task).name] if task else list(TASKS)
    return DataFormatsView(tuple((t, n, FORMATS[n].summary, FORMATS[n].layout)
                                 for t in tasks for n in get_task(t).data_formats))


@dataclass(frozen=True)
class Listed:
    """A backbone as ``find`` lists it.

    Attributes:
        spec: The backbone.
        tasks: Tasks it is verified for (swap, train, eval), in :data:`otxlike.tasks.TASKS` order.
        failures: ``{task: one-line reason}`` for the tasks it failed (end to end, or the fits
            check when not checked end to end: the reason then starts with ``fits:``).
        fits: Tasks it fits but was not checked end to end for, in task order.
    """

    spec: BackboneSpec
    tasks: tuple[str, ...]
    failures: dict
    fits: tuple[str, ...] = ()

    def tier(self, task: str) -> str | None:
        """``'verified'``, ``'fits'`` or None (failed or not checked) for ``task``."""
        return "verified" if task in self.tasks else "fits" if task in self.fits else None


@dataclass(frozen=True)
class BackboneList:
    """Backbones of some libraries with the tasks they passed.

    Attributes:
        listed: The backbones shown (with ``task`` and not ``show_all``: only those verified for
            it or, unless ``verified_only``, fitting it).
        task: The task filtered by, or None.
        show_all: Whether failures are listed too.
        total: Backbones of the libraries.
        failed: Of them, those that failed ``task`` (0 without a task).
        unchecked: Of them, those never checked on ``task`` (0 without a task).
        verified_only: Whether only backbones verified end to end are listed for ``task``.
        verified: Of them, those verified for ``task`` (0 without a task).
        fitting: Of them, those that fit ``task`` without being checked end to end (0 without a task).
    """

    listed: tuple[Listed, ...]
    task: str | None = None
    show_all: bool = False
    total: int = 0
    failed: int = 0
    unchecked: int = 0
    verified_only: bool = False
    verified: int = 0
    fitting: int = 0

    def to_json(self) -> dict:
        from otxlike.catalog.index import spec_to_json

        doc: dict = {"task": self.task} if self.task is not None else {}
        doc["backbones"] = [{**spec_to_json(item.spec), "tasks": list(item.tasks), "fits": list(item.fits),
                             "failures": item.failures, **({"tier": item.tier(self.task)} if self.task else {})}
                            for item in self.listed]
        return doc


@dataclass(frozen=True)
class BackboneDetail:
    """One backbone: its arguments, its outputs with default arguments, its verified tasks.

    Attributes:
        spec: The live spec.
        shapes: Output shapes at ``input_size`` with default arguments, or None.
        reason: Why ``shapes`` is None (one line), else None.
        input_size: Side of the probe input, pixels.
        tasks: Per task, the verified tier: ``'pass'``, the failure reason, or None (never checked
            end to end).
        requested: The name as given, when it differs from ``spec.name`` (matched ignoring case).
        tiers: Per task, :func:`otxlike.compat.matrix.task_tier`: ``(tier, reason)``.
    """

    spec: BackboneSpec
    shapes: FeatureShapes | None
    reason: str | None
    input_size: int
    tasks: dict = field(default_factory=dict)
    requested: str | None = None
    tiers: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        from otxlike.catalog.index import spec_to_json

        shapes = self.shapes
        outputs = [{"channels": c, "stride": s} for c, s in zip(shapes.channels, shapes.strides)] if shapes else None
        return {"backbone": spec_to_json(self.spec), "input_size": self.input_size, "outputs": outputs,
                "error": self.reason, "tasks": dict(self.tasks),
                "tiers": {t: tier for t, (tier, _) in self.tiers.items()}}


def to_json(views) -> dict:
    """The ``--json`` document of the views :func:`find` returned."""
    doc: dict = {"version": JSON_VERSION}
    for view in views:
        doc.update(view.to_json())
    return doc


def backbones_for(libraries: list[str], task: str | None = None, show_all: bool = False,
                  verified_only: bool = False) -> BackboneList:
    """The backbones of ``libraries`` (from the index) with the tasks they are verified for or fit.

    Args:
        libraries: Provider names.
        task: If given (and not ``show_all``), only backbones verified for this task or fitting it.
        show_all: List every backbone, failures included.
        verified_only: With ``task``, list only backbones verified end to end for it.

    Raises:
        OtxlikeError: If a library is unknown or not installed.
    """
    from otxlike.catalog.index import indexed_backbones
    from otxlike.catalog.lookup import provider
    from otxlike.compat.matrix import FITS, VERIFIED, load_matrix, task_tier

    matrix = load_matrix()
    listed = []
    for spec in (s for lib in libraries for s in indexed_backbones(provider(lib))[0]):
        status = {t: task_tier(spec.name, t, matrix) for t in TASKS}
        listed.append(Listed(spec, tuple(t for t in TASKS if status[t][0] == VERIFIED),
                             {t: reason for t, (_, reason) in status.items() if reason is not None},
                             tuple(t for t in TASKS if status[t][0] == FITS)))
    verified = sum(task in item.tasks for item in listed)
    fitting = sum(task in item.fits for item in listed)
    failed = sum(task in item.failures for item in listed)
    unchecked = 0 if task is None else len(listed) - verified - fitting - failed
    wanted = (VERIFIED,) if verified_only else (VERIFIED, FITS)
    shown = listed if task is None or show_all else [item for item in listed if item.tier(task) in wanted]
    return BackboneList(tuple(shown), task, show_all, len(listed), failed, unchecked, verified_only, verified, fitting)


def describe_backbone(name: str, input_size: int = PROBE_SIZE) -> BackboneDetail:
    """A backbone's spec, its output shapes with default arguments, and its matrix entries.

    Args:
        name: Full name, e.g. ``mmdet.ResNet``.
        input_size: Side of the (2, 3, S, S) probe input in pixels.

    Raises:
        OtxlikeError: If the name is unknown.
    """
    from otxlike.catalog.lookup import get_backbone
    from otxlike.catalog.values import default_shapes
    from otxlike.compat.matrix import task_status, task_tier

    spec = get_backbone(name)
    shapes, reason = default_shapes(spec, input_size)
    return BackboneDetail(spec, shapes, reason, input_size, {t: task_status(spec.name, t) for t in TASKS},
                          requested=name if name != spec.name else None,
                          tiers={t: task_tier(spec.name, t) for t in TASKS})


def expand_libraries(names: list[str]) -> list[str]:
    """``--backbone`` values split at commas, with ``all`` replaced by every library not named."""
    from otxlike.catalog.providers import PROVIDERS

    names = [n for value in names for n in value.split(",") if n]
    if "all" in names:
        names = [n for n in names if n != "all"] + [p for p in PROVIDERS if p not in names]
    return names


def load_workspace_code(workspace: Path | None) -> None:
    """Import the custom backbones of the workspace at ``workspace`` (or the current folder), if it
    is one; outside a workspace only installed packages' backbones are listed.

    Raises:
        OtxlikeError: If ``workspace`` is given and is not a workspace, or its code fails to import.
    """
    from otxlike.workspace.workspace import MANIFEST, Workspace

    root = Path(workspace or ".")
    if workspace is not None or (root / MANIFEST).is_file():
        Workspace.load(root).load_custom_modules()


def find(backbones: list[str] | None = None, task: str | None = None, show_all: bool = False,
         template: bool = False, workspace: Path | None = None, formats: bool = False,
         verified_only: bool = False) -> tuple:
    """What ``otxlike find`` shows, as views.

    Args:
        backbones: ``--backbone`` values: library names (comma-separated or repeated, ``all``) or
            one full backbone name for the detail view.
        task: Only backbones verified for this task or fitting it (of every library when
            ``backbones`` names none; with ``template``, the templates of this task).
        show_all: List failures too, with their reasons (every library when ``backbones`` names
            none).
        template: Show the template table.
        workspace: Workspace whose custom backbones ``custom`` lists (default: the current folder
            if it is one).
        formats: Show the data formats (of ``task``, if given) instead.
        verified_only: With ``task``, only backbones verified end to end (``--verified``).

    Returns:
        ``(DataFormatsView,)`` with ``formats``; ``(BackboneDetail,)`` for one full name; else ``TemplatesView`` (when ``template`` or no
        backbones) followed by ``BackboneList`` (when backbones are named).

    Raises:
        OtxlikeError: Unknown task, library or backbone, or a library that is not installed.
    """
    from otxlike.catalog.providers import PROVIDERS
    from otxlike.workspace.templates import list_templates

    if task is not None:
        get_task(task)
    if verified_only and task is None:
        raise OtxlikeError("--verified needs --task", "e.g. otxlike find --task detection --verified")
    if formats:
        if backbones or template or show_all:
            raise OtxlikeError("--data-formats cannot be combined with --backbone / --template / --all",
                               "e.g. otxlike find --data-formats --task detection")
        return (data_formats(task),)
    if backbones is not None and any(not b.strip(" ,") for b in backbones):
        raise OtxlikeError("--backbone is empty",
                           "name a library (mmdet, mmseg, mmpretrain, torchvision, timm, custom, all) or a backbone (mmdet.ResNet)")
    names = expand_libraries(backbones or [])
    if not names and not template and (task is not None or show_all):
        names = expand_libraries(["all"])  # `find --task T` / `find --all`: backbones of every library
    if any(n == "custom" or n.startswith("custom.") for n in names):
        load_workspace_code(workspace)
    if len(names) == 1 and "." in names[0]:
        return (describe_backbone(names[0]),)
    views: list = []
    if template or not names:
        views.append(TemplatesView(tuple(list_templates(task)), tuple(PROVIDERS),
                                   suggest_libraries=not template and not names))
    if names:
        views.append(backbones_for(names, task, show_all, verified_only))
    return tuple(views)

