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
    model: Annotated[Optional[Path], typer.Option(help="An exported model (its folder or model file) to evaluate "
                                                      "instead of a checkpoint.")] = None,
    split: Annotated[str, typer.Option(help="val or test (test falls back to val's folder).")] = "val",
    verbose: Annotated[bool, typer.Option(help="Also show mmengine's log lines.")] = False,
) -> None:
    """Evaluate a checkpoint or an exported model; writes metrics.json in a new run folder and prints
    the metrics."""
    from otxlike.cli.render.tables import metrics_table
    from otxlike.engine.evaluate import evaluate as run_eval
    from otxlike.errors import OtxlikeError
    from otxlike.workspace.workspace import Workspace

    out = console()
    with errors():
        ws = Workspace.load(workspace)
        if model is not None:
            if checkpoint is not None:
                raise OtxlikeError("--model and --checkpoint exclude each other", "pass one of them")
            from otxlike.deploy.evaluate import evaluate_model

            result = evaluate_model(ws, model, split=split)
        else:
            result = run_eval(ws, checkpoint=checkpoint, split=split, verbose=verbose)
        out.print(metrics_table(result.metrics, f"Evaluation on {split}"))
        out.print(f"[*] {'Model' if model is not None else 'Checkpoint'}: {result.checkpoint}", highlight=False)
        out.print(f"[*] Metrics: {result.run_dir / 'metrics.json'} ({result.seconds:.1f} s)", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)
