"""Rich renderings of core results (tables), kept apart from command parsing."""

from __future__ import annotations

from rich.table import Table

from otxlike.find import BackboneDetail, BackboneList, DataFormatsView, TemplatesView
from otxlike.tasks import TASK_SPECS, TASKS


def _short(task: str) -> str:
    """The short name of a task for the Tasks column (full names are in the table's caption)."""
    return TASK_SPECS[task].short


def addins_table(infos) -> Table:
    """``otxlike find --addins``: one row per add-in (:class:`~otxlike.configedit.addins.AddinInfo`)."""
    table = Table(title="Add-ins (docs/addins.md)", caption="A line: (Name(arg=value).entry_function): "
                  "...->(module.path){inout1}->...  ('otxlike find --modules' lists the paths)")
    for column in ("Name", "Entry functions", "Arguments", "Fits", "What it does"):
        table.add_column(column)
    for a in infos:
        table.add_row(a.name + (" (custom)" if a.custom else ""), ", ".join(a.methods) or "(whole module)",
                      ", ".join(a.args) or "-", ", ".join(a.fits) or "any", a.summary)
    return table


def render_find(view) -> list:
    """Renderables of one view of :func:`otxlike.find.find`, in order."""
    if isinstance(view, TemplatesView):
        lines = [template_table(view.templates)]
        if view.suggest_libraries:
            lines.append(f"Backbone libraries: {', '.join(view.libraries)}  (otxlike find --backbone LIB)")
        return lines
    if isinstance(view, BackboneDetail):
        return backbone_detail(view)
    if isinstance(view, DataFormatsView):
        return [data_formats_table(view),
                "Detected by 'otxlike build --data-root DIR' in this order; force one with --data-format NAME (docs/data.md)."]
    lines = [backbone_table(view)]
    if view.task is not None and not view.show_all:
        unchecked = f", {view.unchecked} were not checked" if view.unchecked else ""
        if view.verified_only:
            lines.append(f"{view.verified} of {view.total} backbones passed swap, train and eval for {view.task}"
                         f"{f'; {view.fitting} more fit it (without --verified)' if view.fitting else ''}"
                         f"; {view.failed} failed{unchecked} (docs/compatibility.md). --all lists them with the reason.")
        else:
            lines.append(f"{len(view.listed)} of {view.total} backbones for {view.task}: {view.verified} verified "
                         f"(swap, train, eval), {view.fitting} fit (built, one forward, strides the template takes; "
                         f"not trained); {view.failed} failed{unchecked} (docs/compatibility.md). --verified lists "
                         "only the verified ones, --all every backbone with the reason.")
    elif view.task is None:
        checked = sum(1 for item in view.listed if item.tasks or item.failures or item.fits)
        if checked < len(view.listed):
            custom = any(item.spec.library == "custom" for item in view.listed)
            lines.append(f"{checked} of {len(view.listed)} were checked in the compatibility matrix; empty Tasks and "
                         "Fits columns mean not checked (not failed)"
                         + (", as for every custom backbone: 'build --backbone custom.NAME' checks it in "
                            "your workspace" if custom else "")
                         + ". --task T lists the verified ones and those that fit; 'make compat' checks more "
                         "(docs/compatibility.md).")
    return lines


def backbone_table(view: BackboneList) -> Table:
    """OTX's find table, Index | Backbone Type | Required-Args | Options, plus Tasks and Fits.

    One row per required argument. Weights says whether the library publishes pretrained weights
    for it (``build --backbone`` starts from them). Tasks lists the tasks the backbone is verified
    for in the compatibility matrix (swap, train, eval), Fits those it fits without having been
    checked end to end; with a task, Tier says which of the two holds for it. With ``show_all``,
    a last column gives the failure reason for ``task`` (or, without a task, each failed task's
    reason).
    """
    task, show_all = view.task, view.show_all
    table = Table(show_lines=False, caption="Tasks: verified end to end; Fits: built, one forward, strides the "
                  "template takes, not trained (docs/compatibility.md); "
                  + ", ".join(f"{_short(t)} = {t}" for t in TASKS))
    columns = ["Index", "Backbone Type", "Required-Args", "Options", "Weights", "Tasks", "Fits"]
    if task and not show_all:
        columns.append("Tier")
    if show_all:
        columns.append(f"Status ({task})" if task else "Failures")
    for col in columns:
        table.add_column(col, overflow="fold")
    for index, item in enumerate(view.listed, start=1):
        spec = item.spec
        required = spec.required or (None,)
        extra = []
        if task and not show_all:
            extra = [item.tier(task) or ""]
        if show_all and task:
            extra = ["pass" if task in item.tasks else "fits" if task in item.fits else
                     f"FAIL: {item.failures[task]}" if task in item.failures else "not checked"]
        elif show_all:
            extra = ["; ".join(f"{_short(t)}: {r}" for t, r in item.failures.items())]
        for i, arg in enumerate(required):
            first = i == 0
            table.add_row(
                str(index) if first else "",
                spec.name if first else "",
                arg.name if arg else "",
                ", ".join(map(str, arg.options)) if arg else "",
                ("yes" if spec.weights else "") if first else "",
                " ".join(_short(t) for t in item.tasks) if first else "",
                " ".join(_short(t) for t in item.fits) if first else "",
                *(extra if first else [""] * len(extra)),
                end_section=i == len(required) - 1,
            )
    return table


def template_table(templates) -> Table:
    """Task | ID | Name | Base path of each template."""
    table = Table()
    for col in ("Task", "ID", "Name", "Base path"):
        table.add_column(col, overflow="fold")
    for t in templates:
        table.add_row(t.task, t.id + (" (default)" if t.default else ""), t.name, str(t.path))
    return table


def data_formats_table(view: DataFormatsView) -> Table:
    """Task | Format | What | Layout: the formats ``build --data-root`` detects."""
    table = Table(show_lines=True)
    for col in ("Task", "Format", "What", "Layout"):
        table.add_column(col, overflow="fold")
    for task, name, summary, layout in view.rows:
        table.add_row(task, name, summary, layout)
    return table


def metrics_table(metrics: dict, title: str) -> Table:
    """One row per metric, values with 4 decimals."""
    table = Table(title=title)
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}")
    return table


def backbone_detail(view: BackboneDetail) -> list:
    """Renderables of ``find --backbone lib.Name``: header lines, the argument table, outputs,
    and the tasks it passed or failed in the compatibility matrix."""
    from otxlike.catalog.spec import MISSING

    spec, shapes = view.spec, view.shapes
    table = Table(title=f"{spec.name} arguments")
    for col in ("Argument", "Default", "Annotation", "Description"):
        table.add_column(col, overflow="fold")
    for arg in spec.args:
        if arg.default is MISSING:
            opts = ", ".join(map(str, arg.options)) or "none known: enter a value"
            default = f"[bold]required[/] (options: {opts})"
        else:
            default = repr(arg.default)
        table.add_row(arg.name + (" *" if arg.inherited else ""), default, arg.annotation, arg.doc)
    lines = [f"Backbone: {spec.name}" + (f" ('{view.requested}' matched ignoring case)" if view.requested else ""),
             f"Source:   {spec.source}",
             f"Weights:  {spec.weights or 'none published'} (for the default arguments)", table,
             "* inherited from a parent class through **kwargs"]
    if shapes is not None:
        outs = ", ".join(f"{c} ch @ stride {s}" for c, s in zip(shapes.channels, shapes.strides))
        lines.append(f"Outputs with default arguments at {view.input_size}x{view.input_size}: {outs}")
    else:
        lines.append(f"Outputs with default arguments: not measured ({view.reason})")
    for task in TASKS:
        tier, reason = view.tiers.get(task, (None, None))
        lines.append(f"{task}: " + ("verified (swap, train, eval)" if tier == "verified" else
                                     "fits (built, one forward, strides the template takes; not trained)"
                                     if tier == "fits" else "not checked" if reason is None else "FAILS: " + reason))
    return lines
