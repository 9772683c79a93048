"""``otxlike build``: make a workspace, or change one (backbone, head, data roots)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from otxlike.cli.common import WorkspaceOpt, console, errors, print_lines
from otxlike.errors import OtxlikeError
from otxlike.tasks import TASKS

ORDER = 0


def build(
    task: Annotated[Optional[str], typer.Option(help=f"Make a new workspace for a task: {', '.join(TASKS)}.")] = None,
    template: Annotated[Optional[str], typer.Option(help="Template id of the task (see 'otxlike find --template').")] = None,
    workspace: WorkspaceOpt = None,
    backbone: Annotated[Optional[str], typer.Option(help="Backbone to swap in (e.g. mmdet.RegNet) or an edited backbone.yaml.")] = None,
    head: Annotated[Optional[str], typer.Option(help="Classification head to swap in (e.g. custom.CosineClsHead, "
                                                    "LinearClsHead) or an edited head.yaml.")] = None,
    weights: Annotated[Optional[str], typer.Option(help="Where the backbone starts from: auto (its library's published "
                                                       "weights), none, or a checkpoint path / URL (e.g. another "
                                                       "workspace's best_*.pth).")] = None,
    data_root: Annotated[Optional[Path], typer.Option(help="A dataset with its splits (folder or annotation file): "
                                                           "format and splits are detected.")] = None,
    train_data_roots: Annotated[Optional[Path], typer.Option(help="Folder or annotation file of the train split.")] = None,
    val_data_roots: Annotated[Optional[Path], typer.Option(help="Folder or annotation file of the val split.")] = None,
    data_format: Annotated[Optional[str], typer.Option(help="Force a data format instead of detecting it "
                                                            "(see 'otxlike find --data-formats').")] = None,
    val_split: Annotated[Optional[float], typer.Option(help="Hold out this fraction of a dataset with no split "
                                                            "as val (seeded, stratified by class).")] = None,
    addin: Annotated[Optional[list[str]], typer.Option(help="Add an add-in line to model.py (repeatable), e.g. "
                                                        "'(LoRA.adapt_output): ...->(backbone.layer4.0.conv2){inout1}->...'; "
                                                        "'none' removes them (docs/addins.md).")] = None,
    skip_bad_images: Annotated[bool, typer.Option("--skip-bad-images", help="Accept data with images that are missing "
                                                  "or do not decode (train leaves them out with the same flag).")] = False,
) -> None:
    """Make a workspace from a task template, or change an existing one (backbone, data roots)."""
    from otxlike.cli.render.lines import build_lines, data_lines, head_lines, skipped_lines, swap_lines, updated_lines
    from otxlike.configedit import data
    from otxlike.workspace.workspace import Workspace

    from otxlike.cli.render.progress import check_progress
    from otxlike.data.images import image_check

    out = console()
    with errors(), check_progress(out) as shown, image_check(skip_bad_images, shown) as checked:
        if task is not None:
            result = data.create_workspace(task, workspace, template, train_data_roots, val_data_roots,
                                           data_root=data_root, data_format=data_format, val_split=val_split)
            print_lines(out, [*build_lines(result), *data_lines(result.data), *skipped_lines(checked.skipped)])
            ws = Workspace.load(result.root)
        else:
            if template is not None:
                raise OtxlikeError("--template needs --task", "e.g. otxlike build --task classification --template ID")
            data_given = (data_root, train_data_roots, val_data_roots, data_format, val_split)
            if backbone is None and head is None and weights is None and addin is None \
                    and all(v is None for v in data_given):
                raise OtxlikeError("nothing to build", "give --task to make a workspace, or --backbone / --head / "
                                   "--weights / --addin / --data-root / --train-data-roots / --val-data-roots "
                                   "inside one")
            ws = Workspace.load(workspace)
            if any(v is not None for v in data_given):
                files, plan = data.set_data(ws, data_root=data_root, train_root=train_data_roots,
                                            val_root=val_data_roots, data_format=data_format, val_split=val_split)
                print_lines(out, [*data_lines(plan), *skipped_lines(checked.skipped), *updated_lines(files)])
        if backbone is not None:
            from otxlike.configedit.backbone import swap_backbone

            print_lines(out, swap_lines(swap_backbone(ws, backbone, weights), ws.root, backbone))
        elif weights is not None:
            from otxlike.configedit.backbone import set_weights

            done = set_weights(ws, weights)
            print_lines(out, [f"[*] Weights of model.backbone: {weights}", *updated_lines(done.files, done.backup)])
        if head is not None:
            from otxlike.configedit.head import swap_head

            print_lines(out, head_lines(swap_head(ws, head)))
        if addin is not None:
            from otxlike.cli.render.lines import addin_lines
            from otxlike.configedit.addins import set_addins

            print_lines(out, addin_lines(set_addins(ws, addin)))


def register(app: typer.Typer) -> None:
    app.command()(build)
