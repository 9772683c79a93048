"""The ``[*]`` status lines of ``build``, ``train`` and ``eval``, as plain strings."""

from __future__ import annotations

from pathlib import Path


def build_lines(result) -> list[str]:
    """What ``build --task`` made (a :class:`~otxlike.workspace.workspace.BuildResult`)."""
    return [f"[*] Workspace Path: {result.root}", f"[*] Load Model Template ID: {result.template.id}",
            f"[*] Load Model Name: {result.template.name}",
            *(f"[*]     - Wrote: {path.name}" for path in result.files)]


def data_lines(plan) -> list[str]:
    """What was found in the data (a :class:`~otxlike.configedit.data.DataPlan`): format, each
    split's images and annotations, the classes."""
    if plan is None:
        return []
    lines = [f"[*] Data: {plan.format} at {plan.source}" if plan.source else f"[*] Data: {plan.format}"]
    for split, data in plan.checked.items():
        how = f", {data.note}" if data.note else ""
        held = f" ({plan.val_split:g} held out, seeded)" if plan.val_split and split == "val" else ""
        lines.append(f"[*]     {split}: {data.images:,} images, {data.annotations:,} annotations{held}{how}")
    classes = plan.classes
    shown = ", ".join(classes[:12]) + (f", ... ({len(classes) - 12} more)" if len(classes) > 12 else "")
    lines.append(f"[*]     classes ({len(classes)}): {shown}")
    return lines


def skipped_lines(skipped: list[str]) -> list[str]:
    """The warning of ``--skip-bad-images``: how many files were left out, the first ones."""
    if not skipped:
        return []
    shown = "; ".join(skipped[:3]) + (f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else "")
    return [f"[!] warning: --skip-bad-images: {len(skipped)} unreadable files left out: {shown}",
            "[!]     'otxlike train --skip-bad-images' leaves them out of training too"]


def updated_lines(files, backup: Path | None = None) -> list[str]:
    """One ``Updated:`` line per file, and where the previous versions went."""
    lines = [f"[*] Updated: {path}" for path in files]
    if backup:
        lines.append(f"[*] Previous versions kept in {backup}")
    return lines


def swap_lines(result, root: Path, requested: str | None = None) -> list[str]:
    """What ``build --backbone requested`` did (a :class:`~otxlike.configedit.backbone.SwapResult`);
    a name given in other letter case than the backbone's is said so."""
    spec = result.spec
    matched = (f" ('{requested}' matched ignoring case)" if requested and requested != spec.name
               and requested.lower() == spec.name.lower() else "")
    lines = [f"[*] Backbone: {spec.name}{matched}", f"[*]     source: {spec.source}"]
    for arg in spec.required:
        opts = ", ".join(map(str, arg.options)) or "none known"
        lines.append(f"[*]     required arg '{arg.name}' = {result.values.get(arg.name)}  (options: {opts})")
    if result.missing:
        return [*lines,
                f"[!] {spec.name} backbone has inputs that the user must enter: {', '.join(result.missing)}",
                "[!] Edit backbone.yaml and run 'otxlike build --backbone backbone.yaml'",
                f"[*] Saved: {root / 'backbone.yaml'} (model.py unchanged)"]
    shapes = result.shapes
    weights = result.weights["checkpoint"] if result.weights else "none (random initialisation)"
    lines.append(f"[*]     weights: {weights}")
    lines.append(f"[*] Output channels: {', '.join(map(str, shapes.channels))} "
                 f"(strides {', '.join(map(str, shapes.strides))})")
    for consumer, args in result.edits.items():
        lines.extend(f"[*]     model.{consumer}.{key} = {value}" for key, value in args.items())
    return lines + updated_lines(result.files, result.backup)


def head_lines(result) -> list[str]:
    """What ``build --head`` did (a :class:`~otxlike.configedit.head.HeadResult`)."""
    return [f"[*] Head: {result.type} (in_channels {result.values['in_channels']}, "
            f"num_classes {result.values['num_classes']})", *updated_lines(result.files, result.backup)]


def addin_lines(result) -> list[str]:
    """What ``build --addin`` did (a :class:`~otxlike.configedit.addins.AddinResult`)."""
    from otxlike.cli.render.progress import params_line

    if not result.lines:
        lines = ["[*] Add-ins: none (model.py's addins list removed; every parameter trains)"]
    else:
        lines = [f"[*] Add-in: {line}" for line in result.added] or ["[*] Add-ins: already in model.py"]
        lines.append(f"[*] model.py lists {len(result.lines)} add-in line{'s' * (len(result.lines) != 1)}")
    percent = round(100.0 * result.trainable / max(result.total, 1), 5)
    lines.append(params_line({"trainable": result.trainable, "total": result.total, "percent": percent}))
    return lines + updated_lines(result.files, result.backup)


def modules_lines(paths) -> list[str]:
    """``otxlike find --modules``: one ``path  Type`` line per module, indented by depth."""
    width = max((len(p) for p, _ in paths), default=0)
    return [f"{p.ljust(width)}  {t}" for p, t in paths]


def sample_lines(ds) -> list[str]:
    """What ``sample digits`` wrote (a ``SampleDataset`` or ``CanvasDataset``)."""
    from otxlike.data.digits import CanvasDataset

    if isinstance(ds, CanvasDataset):
        head = (f"[*] Wrote {ds.num_train} train and {ds.num_val} val canvases with {ds.num_objects} digits "
                "(COCO annotations.json, images/, labels/, classes.txt)")
    else:
        head = f"[*] Wrote {ds.num_train} train and {ds.num_val} val images of {len(ds.classes)} classes"
    return [head, f"[*]     train: {ds.train_root}", f"[*]     val:   {ds.val_root}"]
