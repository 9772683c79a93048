"""Rich renderings of core results (tables), kept apart from command parsing."""

from __future__ import annotations

from rich.table import Table

from otxlike.backbones.spec import BackboneSpec


def backbone_table(specs: list[BackboneSpec]) -> Table:
    """OTX's find table: Index | Backbone Type | Required-Args | Options, one row per required arg."""
    table = Table(show_lines=False)
    for col in ("Index", "Backbone Type", "Required-Args", "Options"):
        table.add_column(col, overflow="fold")
    for index, spec in enumerate(specs, start=1):
        required = spec.required or (None,)
        for i, arg in enumerate(required):
            table.add_row(
                str(index) if i == 0 else "",
                spec.name if i == 0 else "",
                arg.name if arg else "",
                ", ".join(map(str, arg.options)) if arg else "",
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
    """Renderables of ``find --backbone lib.Name``: header lines, the argument table, outputs."""
    from otxlike.backbones.spec import MISSING

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
    return lines
