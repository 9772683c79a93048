"""``otxlike eval``: evaluate a checkpoint on the val or test split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from otxlike.cli.common import WorkspaceOpt, console, errors

ORDER = 3


def evaluate(
    workspace: WorkspaceOpt = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="Checkpoint to evaluate (default: outputs/latest).")] = None,
    split: Annotated[str, typer.Option(help="val or test (test falls back to val's folder).")] = "val",
    verbose: Annotated[bool, typer.Option(help="Also show mmengine's log lines.")] = False,
) -> None:
    """Evaluate a checkpoint; writes metrics.json in a new run folder and prints the metrics."""
    from otxlike.cli.render.tables import metrics_table
    from otxlike.engine.evaluate import evaluate as run_eval
    from otxlike.workspace.workspace import Workspace

    out = console()
    with errors():
        ws = Workspace.load(workspace)
        result = run_eval(ws, checkpoint=checkpoint, split=split, verbose=verbose)
        out.print(metrics_table(result.metrics, f"Evaluation on {split}"))
        out.print(f"[*] Checkpoint: {result.checkpoint}", highlight=False)
        out.print(f"[*] Metrics: {result.run_dir / 'metrics.json'} ({result.seconds:.1f} s)", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
