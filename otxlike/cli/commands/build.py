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
    train_data_roots: Annotated[Optional[Path], typer.Option(help="Folder of the train split.")] = None,
    val_data_roots: Annotated[Optional[Path], typer.Option(help="Folder of the val split.")] = None,
) -> None:
    """Make a workspace from a task template, or change an existing one (backbone, data roots)."""
    from otxlike.cli.render.lines import build_lines, head_lines, swap_lines, updated_lines
    from otxlike.configedit import data
    from otxlike.workspace.workspace import Workspace

    out = console()
    with errors():
        if task is not None:
            result = data.create_workspace(task, workspace, template, train_data_roots, val_data_roots)
            print_lines(out, build_lines(result))
            ws = Workspace.load(result.root)
        else:
            if template is not None:
                raise OtxlikeError("--template needs --task", "e.g. otxlike build --task classification --template ID")
            if backbone is None and head is None and weights is None and train_data_roots is None \
                    and val_data_roots is None:
                raise OtxlikeError("nothing to build", "give --task to make a workspace, or --backbone / --head / "
                                   "--weights / --train-data-roots / --val-data-roots inside one")
            ws = Workspace.load(workspace)
            if train_data_roots is not None or val_data_roots is not None:
                print_lines(out, updated_lines(data.set_data_roots(ws, {"train": train_data_roots,
                                                                        "val": val_data_roots})))
        if backbone is not None:
            from otxlike.configedit.backbone import swap_backbone

            print_lines(out, swap_lines(swap_backbone(ws, backbone, weights), ws.root))
        elif weights is not None:
            from otxlike.configedit.backbone import set_weights

            done = set_weights(ws, weights)
            print_lines(out, [f"[*] Weights of model.backbone: {weights}", *updated_lines(done.files, done.backup)])
        if head is not None:
            from otxlike.configedit.head import swap_head

            print_lines(out, head_lines(swap_head(ws, head)))


def register(app: typer.Typer) -> None:
    app.command()(build)
