"""``otxlike export``: the trained model as OpenVINO IR, ONNX or TorchScript with its model.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from otxlike.cli.common import WorkspaceOpt, console, errors

ORDER = 4


def export(
    workspace: WorkspaceOpt = None,
    format: Annotated[str, typer.Option("--format", help="openvino, onnx or torchscript.")] = "openvino",
    checkpoint: Annotated[Optional[Path], typer.Option(help="Checkpoint to export (default: the best of outputs/latest).")] = None,
    precision: Annotated[str, typer.Option(help="fp32, or fp16 weights (openvino); INT8: 'otxlike optimize'.")] = "fp32",
    input_size: Annotated[Optional[tuple[int, int]], typer.Option(help="Input height and width in pixels "
                                                                        "(default: data_pipeline.py's input_size).")] = None,
) -> None:
    """Export a checkpoint to outputs/<time>_export/: the model (batch dimension dynamic, NMS inside)
    and model.json (classes, input size and colour order, outputs). docs/deploy.md says how to run it."""
    from otxlike.deploy.export import export as run_export
    from otxlike.workspace.workspace import Workspace

    out = console()
    with errors():
        ws = Workspace.load(workspace)
        result = run_export(ws, format, checkpoint=checkpoint, precision=precision, input_size=input_size)
        info = result.info
        shape = "x".join(str(v) for v in info["input"]["shape"][2:])
        outputs = ", ".join(f"{o['name']} {tuple(o['shape'])}" for o in info["outputs"])
        out.print(f"[*] Exported {info['task']} model ({info['format']}, {info['precision']}, input N x 3 x {shape}, "
                  f"outputs {outputs})", highlight=False)
        out.print(f"[*] Checked against PyTorch: max |difference| {info['check']['max_abs_diff']:.2g} "
                  f"in '{info['check']['output']}' at batch {info['check']['batch']}", highlight=False)
        out.print(f"[*] Model: {result.model}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
