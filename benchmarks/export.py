"""Exported models against PyTorch eager: images/s at batch 1 and 8 and the metric of each, per task.

Run: .venv/bin/python benchmarks/export.py [--task T ...] [--epochs N] [--workspace DIR ...]

For each task, in one process:
1. a trained workspace: `--workspace DIR` (one per task, any trained otxlike workspace), or
   `create_workspace` on the digits sample and `otxlike.engine.train.train` with the template's
   epochs (`--epochs` overrides) from random weights;
2. `otxlike export` to ONNX and to OpenVINO FP32, `otxlike optimize` to OpenVINO INT8 (300
   calibration images);
3. the same batches (val images at the exported input size) through PyTorch eager (the export
   graph in `torch.no_grad()`, the same computation the exports hold), the library's own
   `model.test_step` (data preprocessor + per-image predict: what `otxlike eval` runs), ONNX
   Runtime, OpenVINO FP32 and INT8: images/s over >= 3 s per setting after one warm-up call, all
   threads of the machine;
4. the metric of each on val: the checkpoint through mmengine's Runner (`otxlike eval`), the
   exports through `otxlike eval --model`.
Ratios are images/s over eager's at the same batch size. Targets (issue 14): OpenVINO FP32 >=
1.5x eager at batch 8; INT8 >= 2x eager with <= 1 point of metric loss (classification, detection).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TASKS = ("classification", "detection", "instance-segmentation", "segmentation")


def trained_workspace(task: str, root: Path, epochs: int | None):
    from otxlike.configedit.data import create_workspace
    from otxlike.engine.hparams import HParams
    from otxlike.engine.train import train
    from otxlike.workspace.workspace import Workspace

    from otxlike.tasks import get_task

    data = get_task(task).write_sample(root / "data")
    ws = Workspace.load(create_workspace(task, root / "ws", train_root=data.train_root, val_root=data.val_root).root)
    train(ws, hparams=HParams(epochs=epochs, weights="none"))
    return ws


def library_runner(graph, task: str):
    """``batch -> {}``: the library's own inference on the same images, ``model.test_step`` (data
    preprocessor, then mmpretrain / mmdet / mmseg ``predict`` with its per-image post-processing)."""
    import torch

    model = graph.model
    h, w = graph.input_size

    def samples(n):
        if task == "classification":
            return None
        if task == "segmentation":
            from mmseg.structures import SegDataSample as Sample
        else:
            from mmdet.structures import DetDataSample as Sample
        out = []
        for _ in range(n):
            sample = Sample()
            sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
            out.append(sample)
        return out

    def run(batch):
        inputs = [torch.from_numpy(image[::-1].copy()) for image in batch]  # BGR, as LoadImageFromFile gives
        with torch.no_grad():
            model.test_step({"inputs": inputs, "data_samples": samples(len(batch))})
        return {}
    return run


def measure(ws, seconds: float) -> list[tuple]:
    """Rows of (runtime, metric, fps at batch 1, fps at batch 8)."""
    import numpy as np

    from otxlike.deploy.evaluate import evaluate_model
    from otxlike.deploy.export import checkpoint_graph, export
    from otxlike.deploy.optimize import optimize
    from otxlike.deploy.runtime import LoadedModel, graph_runner, load_exported, read_images, throughput
    from otxlike.engine.evaluate import evaluate

    key = ws.task_spec.metric
    graph, info, checkpoint = checkpoint_graph(ws, None, None)
    eager = LoadedModel(info, checkpoint, graph_runner(graph))
    onnx = load_exported(export(ws, "onnx").folder)
    fp32 = load_exported(export(ws, "openvino").folder)
    int8 = load_exported(optimize(ws, fp32.path.parent, subset_size=300).folder)
    val = ws.data_root("val")
    images = sorted(p for p in val.rglob("*") if p.suffix.lower() in (".png", ".jpg") and "labels" not in p.parts)
    batch8, _ = read_images(images[:8], eager.input_size)
    reference = evaluate(ws, checkpoint=checkpoint).metrics[key]
    rows = [("PyTorch eager", reference, eager),
            ("library predict", reference, LoadedModel(info, checkpoint, library_runner(graph, ws.task)))]
    for name, model in (("ONNX Runtime", onnx), ("OpenVINO FP32", fp32), ("OpenVINO INT8", int8)):
        rows.append((name, evaluate_model(ws, model).metrics[key], model))
    return [(name, metric, throughput(model, np.ascontiguousarray(batch8[:1]), seconds),
             throughput(model, batch8, seconds)) for name, metric, model in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", action="append", choices=list(TASKS))
    parser.add_argument("--workspace", action="append", type=Path, default=[],
                        help="a trained workspace (its task is read from it); repeat per task")
    parser.add_argument("--epochs", type=int, default=None, help="override the templates' max_epochs")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per runtime and batch size")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from otxlike.workspace.workspace import Workspace

    workspaces = [Workspace.load(w) for w in args.workspace]
    have = {ws.task for ws in workspaces}
    tmp = Path(tempfile.mkdtemp(prefix="otxlike-export-bench-"))
    for task in args.task or ([] if workspaces else list(TASKS)):
        if task not in have:
            workspaces.append(trained_workspace(task, tmp / task, args.epochs))
    for ws in workspaces:
        rows = measure(ws, args.seconds)
        key = ws.task_spec.metric
        eager1, eager8 = rows[0][2], rows[0][3]
        print(f"\n{ws.task} ({ws.root}), metric {key}")
        print(f"  {'runtime':<15} {'metric':>8} {'img/s b1':>9} {'x eager':>8} {'img/s b8':>9} {'x eager':>8}")
        for name, metric, fps1, fps8 in rows:
            print(f"  {name:<15} {metric:>8.4g} {fps1:>9.1f} {fps1 / eager1:>8.2f} {fps8:>9.1f} {fps8 / eager8:>8.2f}")


if __name__ == "__main__":
    main()
