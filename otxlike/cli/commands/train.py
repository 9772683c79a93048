"""``otxlike train``: train the workspace's model."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from otxlike.cli.common import WorkspaceOpt, console, errors

ORDER = 2


def train(
    workspace: WorkspaceOpt = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override max_epochs of model.py for this run.")] = None,
    verbose: Annotated[bool, typer.Option(help="Also show mmengine's log lines.")] = False,
) -> None:
    """Train the workspace's model on data.yaml's train split (validating on val)."""
    from otxlike.cli.render.progress import train_progress
    from otxlike.cli.render.tables import metrics_table
    from otxlike.engine.train import train as run_train
    from otxlike.workspace.workspace import Workspace

    out = console()
    with errors():
        ws = Workspace.load(workspace)
        bar, on_progress = train_progress(out)
        with bar:
            result = run_train(ws, epochs=epochs, on_progress=on_progress, verbose=verbose)
        out.print(metrics_table(result.metrics, "Validation after training"))
        out.print(f"[*] Run folder: {result.run_dir} ({result.seconds:.1f} s)", highlight=False)
        out.print(f"[*] Checkpoint: {result.checkpoint}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(train)
