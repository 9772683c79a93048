"""``otxlike optimize``: INT8 post-training quantization of an OpenVINO export (NNCF)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from otxlike.cli.common import WorkspaceOpt, console, errors

ORDER = 5


def optimize(
    workspace: WorkspaceOpt = None,
    model: Annotated[Optional[Path], typer.Option(help="FP32 OpenVINO export to quantize (default: the newest).")] = None,
    subset_size: Annotated[int, typer.Option(help="Calibration images from the train split.")] = 300,
) -> None:
    """Quantize an OpenVINO export to INT8 (NNCF post-training quantization) into
    outputs/<time>_optimize/; prints the accuracy drop and the speed-up on val."""
    from otxlike.deploy.optimize import optimize as run_optimize
    from otxlike.workspace.workspace import Workspace

    out = console()
    with errors():
        ws = Workspace.load(workspace)
        result = run_optimize(ws, model, subset_size=subset_size)
        r = result.report
        out.print(f"[*] INT8 from {r['subset_size']} train images: {r['metric']} {r['fp32']:.4g} -> {r['int8']:.4g} "
                  f"(drop {r['drop']:.3g})", highlight=False)
        out.print(f"[*] Speed at batch {r['batch']}: {r['fp32_fps']:.1f} -> {r['int8_fps']:.1f} images/s "
                  f"(x{r['speedup']:.2f})", highlight=False)
        out.print(f"[*] Model: {result.model}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize)
