"""``otxlike``: build a workspace, find and swap backbones, train and evaluate.

Every command calls one core function. A core :class:`~otxlike.errors.OtxlikeError` is printed
as one line and exits with code 2; any other error is one line with exit code 1. ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from otxlike import TASKS, __version__
from otxlike.errors import OtxlikeError, one_line

# Plain click help (rich_markup_mode=None) keeps `otxlike --help` from importing rich; rich is
# imported by the commands that print.
app = typer.Typer(
    help="Build, find and swap backbones, train and evaluate OpenMMLab models from a workspace.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
sample_app = typer.Typer(help="Write sample datasets made from real images shipped by installed packages.",
                         no_args_is_help=True, rich_markup_mode=None)
app.add_typer(sample_app, name="sample")

_state = {"debug": False}

WorkspaceOpt = Annotated[Optional[Path], typer.Option("--workspace", "-w", help="Workspace folder (default: the current folder).")]


def _out():
    """stdout console; lines never wrap mid-path, and pipes/CI get 160 columns instead of 80."""
    from rich.console import Console

    return Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


@contextmanager
def _errors():
    """Map errors to one line and an exit code (2 for user errors); --debug re-raises."""
    from rich.console import Console

    err = Console(file=sys.stderr, soft_wrap=True)
    try:
        if not _state["debug"]:
            warnings.simplefilter("ignore")
        yield
    except OtxlikeError as exc:
        if _state["debug"]:
            raise
        err.print(f"[bold red]error:[/] {one_line(exc)}", highlight=False, markup=True)
        raise typer.Exit(2) from None
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if _state["debug"]:
            raise
        err.print(f"[bold red]error:[/] {type(exc).__name__}: {one_line(exc)} (run with --debug for the traceback)",
                  highlight=False)
        raise typer.Exit(1) from None


def _version(value: bool) -> None:
    if value:
        print(f"otxlike {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and library warnings.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    _state["debug"] = debug


def _print_swap(out, result, root: Path) -> None:
    spec = result.spec
    out.print(f"[*] Backbone: {spec.name}", highlight=False)
    out.print(f"[*]     source: {spec.source}", highlight=False)
    for arg in spec.required:
        opts = ", ".join(map(str, arg.options)) or "none known"
        value = result.values.get(arg.name)
        out.print(f"[*]     required arg '{arg.name}' = {value}  (options: {opts})", highlight=False)
    if result.missing:
        out.print(f"[!] {spec.name} backbone has inputs that the user must enter: {', '.join(result.missing)}",
                  highlight=False)
        out.print("[!] Edit backbone.yaml and run 'otxlike build --backbone backbone.yaml'", highlight=False)
        out.print(f"[*] Saved: {root / 'backbone.yaml'} (model.py unchanged)", highlight=False)
        return
    shapes = result.shapes
    out.print(f"[*] Output channels: {', '.join(map(str, shapes.channels))} "
              f"(strides {', '.join(map(str, shapes.strides))})", highlight=False)
    for consumer, args in result.edits.items():
        for key, value in args.items():
            out.print(f"[*]     model.{consumer}.{key} = {value}", highlight=False)
    for path in result.files:
        out.print(f"[*] Updated: {path}", highlight=False)
    if result.backup:
        out.print(f"[*] Previous versions kept in {result.backup}", highlight=False)


@app.command()
def build(
    task: Annotated[Optional[str], typer.Option(help=f"Make a new workspace for a task: {', '.join(TASKS)}.")] = None,
    template: Annotated[Optional[str], typer.Option(help="Template id of the task (see 'otxlike find --template').")] = None,
    workspace: WorkspaceOpt = None,
    backbone: Annotated[Optional[str], typer.Option(help="Backbone to swap in (e.g. mmdet.RegNet) or an edited backbone.yaml.")] = None,
    head: Annotated[Optional[str], typer.Option(help="Classification head to swap in (e.g. custom.CosineClsHead, "
                                                    "LinearClsHead) or an edited head.yaml.")] = None,
    train_data_roots: Annotated[Optional[Path], typer.Option(help="Folder of the train split.")] = None,
    val_data_roots: Annotated[Optional[Path], typer.Option(help="Folder of the val split.")] = None,
) -> None:
    """Make a workspace from a task template, or change an existing one (backbone, data roots)."""
    from otxlike.workspace.workspace import Workspace, create_workspace

    out = _out()
    with _errors():
        if task is not None:
            result = create_workspace(task, workspace, template, train_data_roots, val_data_roots)
            out.print(f"[*] Workspace Path: {result.root}", highlight=False)
            out.print(f"[*] Load Model Template ID: {result.template.id}", highlight=False)
            out.print(f"[*] Load Model Name: {result.template.name}", highlight=False)
            for path in result.files:
                out.print(f"[*]     - Wrote: {path.name}", highlight=False)
            ws = Workspace.load(result.root)
        else:
            if template is not None:
                raise OtxlikeError("--template needs --task", "e.g. otxlike build --task classification --template ID")
            if backbone is None and head is None and train_data_roots is None and val_data_roots is None:
                raise OtxlikeError("nothing to build", "give --task to make a workspace, or --backbone / --head / "
                                   "--train-data-roots / --val-data-roots inside one")
            ws = Workspace.load(workspace)
            if train_data_roots is not None or val_data_roots is not None:
                for path in ws.set_data_roots({"train": train_data_roots, "val": val_data_roots}):
                    out.print(f"[*] Updated: {path}", highlight=False)
        if backbone is not None:
            from otxlike.configedit.swap import swap_backbone

            _print_swap(out, swap_backbone(ws, backbone), ws.root)
        if head is not None:
            from otxlike.configedit.head import swap_head

            result = swap_head(ws, head)
            out.print(f"[*] Head: {result.type} (in_channels {result.values['in_channels']}, "
                      f"num_classes {result.values['num_classes']})", highlight=False)
            for path in result.files:
                out.print(f"[*] Updated: {path}", highlight=False)
            if result.backup:
                out.print(f"[*] Previous versions kept in {result.backup}", highlight=False)


def _split_names(values: list[str]) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


@app.command()
def find(
    backbone: Annotated[Optional[list[str]], typer.Option(help="Library (mmdet, mmseg, mmpretrain, torchvision, timm, "
                                                              "custom, or all; repeat or comma-separate), or one full name.")] = None,
    task: Annotated[Optional[str], typer.Option(help="Only backbones verified end to end for this task "
                                                    "(docs/compatibility.md).")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="List every backbone, with the failures and their reasons.")] = False,
    template: Annotated[bool, typer.Option("--template", help="List the task templates.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON document instead (see docs/json.md).")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """List backbones of installed libraries (computed live), the task templates, or one backbone
    in detail (--backbone mmdet.ResNet)."""
    from otxlike.backbones.catalog import PROVIDERS
    from otxlike.cli.render import backbone_table, template_table
    from otxlike.workspace.templates import check_task, list_templates

    out = _out()
    with _errors():
        if task is not None:
            check_task(task)
        names = _split_names(backbone or [])
        if "all" in names:
            names = [n for n in names if n != "all"] + [p for p in PROVIDERS if p not in names]
        if any(n == "custom" or n.startswith("custom.") for n in names):
            _load_workspace_code(workspace)
        if as_json:
            print(json.dumps(_find_json(names, task, template, show_all), indent=2))
            return
        if len(names) == 1 and "." in names[0]:
            from otxlike.cli.render import backbone_detail
            from otxlike.configedit.compat import DETAIL_INPUT_SIZE, describe_backbone

            for line in backbone_detail(*describe_backbone(names[0]), input_size=DETAIL_INPUT_SIZE):
                out.print(line, highlight=False)
            return
        if template or not backbone:
            out.print(template_table(list_templates(task)))
            if not backbone and not template:
                out.print(f"Backbone libraries: {', '.join(PROVIDERS)}  (otxlike find --backbone LIB)", highlight=False)
            if not backbone:
                return
        from otxlike.configedit.compat import backbones_for

        listed, counts = backbones_for(names, task, show_all)
        out.print(backbone_table(listed, task, show_all))
        if task is not None and not show_all:
            unchecked = f", {counts['unchecked']} were not checked" if counts["unchecked"] else ""
            out.print(f"{len(listed)} of {counts['total']} backbones passed swap, train and eval for {task}; "
                      f"{counts['failed']} failed{unchecked} (docs/compatibility.md). --all lists them with the reason.",
                      highlight=False)


def _load_workspace_code(workspace: Path | None) -> None:
    """Import the custom backbones of the workspace at ``workspace`` (or the current folder),
    if it is one; outside a workspace only installed packages' backbones are listed."""
    from otxlike.workspace.workspace import MANIFEST, Workspace

    root = Path(workspace or ".")
    if workspace is not None or (root / MANIFEST).is_file():
        Workspace.load(root).load_custom_modules()


def _find_json(names: list[str], task: str | None, template: bool, show_all: bool = False) -> dict:
    """The document of ``find --json`` (documented in docs/json.md)."""
    from otxlike.backbones.catalog import PROVIDERS
    from otxlike.backbones.index import spec_to_json
    from otxlike.workspace.templates import list_templates

    if len(names) == 1 and "." in names[0]:
        from otxlike.configedit.compat import DETAIL_INPUT_SIZE, describe_backbone

        spec, shapes, reason = describe_backbone(names[0])
        outputs = [{"channels": c, "stride": s} for c, s in zip(shapes.channels, shapes.strides)] if shapes else None
        from otxlike.verify import task_status

        return {"version": 1, "backbone": spec_to_json(spec), "input_size": DETAIL_INPUT_SIZE, "outputs": outputs,
                "error": reason, "tasks": {t: task_status(spec.name, t) for t in TASKS}}
    doc: dict = {"version": 1}
    if template or not names:
        doc["templates"] = [{"task": t.task, "id": t.id, "name": t.name, "library": t.library, "default": t.default,
                             "path": str(t.path)} for t in list_templates(task)]
        doc["libraries"] = list(PROVIDERS)
    if names:
        from otxlike.configedit.compat import backbones_for

        if task is not None:
            doc["task"] = task
        doc["backbones"] = [{**spec_to_json(item.spec), "tasks": list(item.tasks), "failures": item.failures}
                            for item in backbones_for(names, task, show_all)[0]]
    return doc


def _train_progress(out):
    """A rich progress bar per epoch fed by the engine's Progress callbacks.

    Without a terminal (logs, CI) a bar would only render at the end, so one line per epoch is
    printed instead.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}"), TimeElapsedColumn(),
                   console=out, transient=False, disable=not out.is_terminal)
    tasks: dict[int, int] = {}

    def on_progress(p) -> None:
        if p.phase == "val":
            # COCO reports -1 for object sizes the data has none of: noise in a progress line
            shown = ", ".join(f"{k} {v:.3f}" for k, v in (p.metrics or {}).items() if v >= 0)
            bar.console.print(f"[*] epoch {p.epoch}/{p.max_epochs} val: {shown}", highlight=False)
            return
        if not out.is_terminal:
            if p.iter == p.iters_per_epoch:
                out.print(f"[*] epoch {p.epoch}/{p.max_epochs} train: {p.iter} iterations, "
                          f"loss {p.loss:.4f}, lr {p.lr:.2e}", highlight=False)
            return
        if p.epoch not in tasks:
            tasks[p.epoch] = bar.add_task("train", total=p.iters_per_epoch, epoch=f"{p.epoch}/{p.max_epochs}",
                                          loss="-", lr="-")
        bar.update(tasks[p.epoch], completed=p.iter, loss=f"{p.loss:.4f}" if p.loss is not None else "-",
                   lr=f"{p.lr:.2e}" if p.lr is not None else "-")

    return bar, on_progress


@app.command()
def train(
    workspace: WorkspaceOpt = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override max_epochs of model.py for this run.")] = None,
    verbose: Annotated[bool, typer.Option(help="Also show mmengine's log lines.")] = False,
) -> None:
    """Train the workspace's model on data.yaml's train split (validating on val)."""
    from otxlike.cli.render import metrics_table
    from otxlike.engine.runner import train as run_train
    from otxlike.workspace.workspace import Workspace

    out = _out()
    with _errors():
        ws = Workspace.load(workspace)
        bar, on_progress = _train_progress(out)
        with bar:
            result = run_train(ws, epochs=epochs, on_progress=on_progress, verbose=verbose)
        out.print(metrics_table(result.metrics, "Validation after training"))
        out.print(f"[*] Run folder: {result.run_dir} ({result.seconds:.1f} s)", highlight=False)
        out.print(f"[*] Checkpoint: {result.checkpoint}", highlight=False)


@app.command("eval")
def evaluate(
    workspace: WorkspaceOpt = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="Checkpoint to evaluate (default: outputs/latest).")] = None,
    split: Annotated[str, typer.Option(help="val or test (test falls back to val's folder).")] = "val",
    verbose: Annotated[bool, typer.Option(help="Also show mmengine's log lines.")] = False,
) -> None:
    """Evaluate a checkpoint; writes metrics.json in a new run folder and prints the metrics."""
    from otxlike.cli.render import metrics_table
    from otxlike.engine.runner import evaluate as run_eval
    from otxlike.workspace.workspace import Workspace

    out = _out()
    with _errors():
        ws = Workspace.load(workspace)
        result = run_eval(ws, checkpoint=checkpoint, split=split, verbose=verbose)
        out.print(metrics_table(result.metrics, f"Evaluation on {split}"))
        out.print(f"[*] Checkpoint: {result.checkpoint}", highlight=False)
        out.print(f"[*] Metrics: {result.run_dir / 'metrics.json'} ({result.seconds:.1f} s)", highlight=False)


@app.command()
def doctor() -> None:
    """Print the versions of the stack and check that mmcv's compiled ops run."""
    from otxlike.doctor import STACK, check_mmcv_ops, versions

    out = _out()
    with _errors():
        for name, version in versions(STACK).items():
            out.print(f"{name:16s} {version or 'not installed'}", highlight=False)
        out.print(f"mmcv.ops         {check_mmcv_ops()}", highlight=False)


@sample_app.command("digits")
def sample_digits(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write train/ and val/ into.")],
    task: Annotated[str, typer.Option(help="classification: a folder per class; detection, instance-segmentation, "
                                           "segmentation: canvases with COCO JSON and label maps.")] = "classification",
    num_train: Annotated[int, typer.Option(help="Canvases in train (canvas tasks).")] = 200,
    num_val: Annotated[int, typer.Option(help="Canvases in val (canvas tasks).")] = 50,
    size: Annotated[Optional[int], typer.Option(help="Image side in pixels (default 32 for classification, 128 for canvases).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split and the layout.")] = 0,
    limit: Annotated[Optional[int], typer.Option(help="At most this many images per class (classification).")] = None,
) -> None:
    """scikit-learn's UCI digits (1,797 real scans) as a dataset for a task."""
    from otxlike.data.digits import write_digits_canvases, write_digits_classification
    from otxlike.workspace.templates import check_task

    out = _out()
    with _errors():
        check_task(task)
        if task == "classification":
            ds = write_digits_classification(out_dir, size=size or 32, seed=seed, limit=limit)
            out.print(f"[*] Wrote {ds.num_train} train and {ds.num_val} val images of {len(ds.classes)} classes",
                      highlight=False)
        else:
            ds = write_digits_canvases(out_dir, num_train=num_train, num_val=num_val, canvas=size or 128, seed=seed)
            out.print(f"[*] Wrote {ds.num_train} train and {ds.num_val} val canvases with {ds.num_objects} digits "
                      "(COCO annotations.json, images/, labels/, classes.txt)", highlight=False)
        out.print(f"[*]     train: {ds.train_root}", highlight=False)
        out.print(f"[*]     val:   {ds.val_root}", highlight=False)


def main() -> None:
    """Console-script entry point."""
    app()
