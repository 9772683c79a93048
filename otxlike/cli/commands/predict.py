"""``otxlike predict``: results and pictures for images, from an exported model or a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from otxlike.cli.common import WorkspaceOpt, console, errors

ORDER = 6


def predict(
    source: Annotated[Path, typer.Argument(help="An image file or a folder of images.")],
    workspace: WorkspaceOpt = None,
    model: Annotated[Optional[Path], typer.Option(help="An export folder or its model file (no workspace needed).")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="A checkpoint of the workspace (default when no --model: "
                                                            "the best of outputs/latest).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="New folder for predictions.json and the pictures (default: "
                                                    "outputs/<time>_predict of the workspace, or beside the --model "
                                                    "folder).")] = None,
    score_thr: Annotated[float, typer.Option(help="Detections below this score are left out.")] = 0.3,
    batch_size: Annotated[int, typer.Option(help="Images per inference call.")] = 8,
) -> None:
    """Predict on images: writes predictions.json and each image with boxes, masks or the class map
    drawn over it."""
    from otxlike.errors import OtxlikeError

    output = console()
    with errors():
        if model is not None and checkpoint is not None:
            raise OtxlikeError("--model and --checkpoint exclude each other", "pass one of them")
        from otxlike.deploy.predict import predict as run_predict
        from otxlike.workspace.workspace import Workspace

        ws = Workspace.load(workspace) if model is None or workspace is not None else None
        if model is not None:
            from otxlike.deploy.runtime import load_exported

            loaded = load_exported(model)
        else:
            from otxlike.deploy.export import checkpoint_model

            loaded = checkpoint_model(ws, checkpoint)
        if out is None:
            from otxlike.fileio import timestamp

            base = ws.outputs if ws is not None else loaded.path.parent.parent
            out = base / f"{timestamp()}_predict"
        result = run_predict(loaded, source, out, score_thr=score_thr, batch_size=batch_size)
        output.print(f"[*] {len(result.results)} images, {loaded.info['format']} model {loaded.path}", highlight=False)
        for item in result.results[:5]:
            output.print(f"    {Path(item['image']).name}: {_summary(item)}", highlight=False)
        if len(result.results) > 5:
            output.print(f"    ... {len(result.results) - 5} more", highlight=False)
        output.print(f"[*] Results: {result.out_dir / 'predictions.json'}", highlight=False)


def _summary(item: dict) -> str:
    if "predicted_classes" in item:  # multi-label: every class at or above the threshold
        return ", ".join(item["predicted_classes"]) or f"none above the threshold (best: {item['class']} {item['score']:.2f})"
    if "class" in item:
        return f"{item['class']} ({item['score']:.2f})"
    if "detections" in item:
        found = item["detections"]
        return f"{len(found)} found" + (": " + ", ".join(f"{d['class']} {d['score']:.2f}" for d in found[:4]) if found else "")
    return ", ".join(f"{name} {n} px" for name, n in item["pixels"].items())


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
