"""Rich renderings of core results (tables), kept apart from command parsing."""

from __future__ import annotations

from rich.table import Table

from otxlike.backbones.spec import BackboneSpec


#: Short task names for the Tasks column (full names are in the table's caption).
TASK_ABBREV = {"classification": "cls", "detection": "det", "instance-segmentation": "inst-seg", "segmentation": "seg"}


def backbone_table(listed, task: str | None = None, show_all: bool = False) -> Table:
    """OTX's find table, Index | Backbone Type | Required-Args | Options, plus Tasks.

    One row per required argument. Tasks lists the tasks the backbone passed in the
    compatibility matrix. With ``show_all``, a last column gives the failure reason for ``task``
    (or, without a task, each failed task's reason).
    """
    table = Table(show_lines=False, caption="Tasks: verified end to end (docs/compatibility.md); "
                  + ", ".join(f"{v} = {k}" for k, v in TASK_ABBREV.items()))
    columns = ["Index", "Backbone Type", "Required-Args", "Options", "Tasks"]
    if show_all:
        columns.append(f"Status ({task})" if task else "Failures")
    for col in columns:
        table.add_column(col, overflow="fold")
    for index, item in enumerate(listed, start=1):
        spec = item.spec
        required = spec.required or (None,)
        extra = []
        if show_all and task:
            extra = ["pass" if task in item.tasks else
                     f"FAIL: {item.failures[task]}" if task in item.failures else "not checked"]
        elif show_all:
            extra = ["; ".join(f"{TASK_ABBREV[t]}: {r}" for t, r in item.failures.items())]
        for i, arg in enumerate(required):
            first = i == 0
            table.add_row(
                str(index) if first else "",
                spec.name if first else "",
                arg.name if arg else "",
                ", ".join(map(str, arg.options)) if arg else "",
                " ".join(TASK_ABBREV[t] for t in item.tasks) if first else "",
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


def metrics_table(metrics: dict, title: str) -> Table:
    """One row per metric, values with 4 decimals."""
    table = Table(title=title)
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}")
    return table


def backbone_detail(spec: BackboneSpec, shapes, reason: str | None, input_size: int) -> list:
    """Renderables of ``find --backbone lib.Name``: header lines, the argument table, outputs,
    and the tasks it passed or failed in the compatibility matrix."""
    from otxlike import TASKS
    from otxlike.backbones.spec import MISSING
    from otxlike.verify import task_status

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
    lines = [f"Backbone: {spec.name}", f"Source:   {spec.source}", table,
             "* inherited from a parent class through **kwargs"]
    if shapes is not None:
        outs = ", ".join(f"{c} ch @ stride {s}" for c, s in zip(shapes.channels, shapes.strides))
        lines.append(f"Outputs with default arguments at {input_size}x{input_size}: {outs}")
    else:
        lines.append(f"Outputs with default arguments: not measured ({reason})")
    for task in TASKS:
        status = task_status(spec.name, task)
        lines.append(f"{task}: {'verified (swap, train, eval)' if status == 'pass' else 'not checked' if status is None else 'FAILS: ' + status}")
    return lines
