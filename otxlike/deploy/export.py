"""``otxlike export``: a checkpoint becomes an OpenVINO IR, ONNX or TorchScript model + model.json.

The graph (:mod:`otxlike.deploy.graphs`) is traced with torch's TorchScript-based ONNX exporter
(``torch.onnx.export(..., dynamo=False)``, opset 17): torch 2.13's default dynamo exporter fails
on NMS (DESIGN.md section 7), while the TorchScript-based one takes the ``symbolic`` of our NMS
and of torchvision's ``roi_align``. OpenVINO IR is converted from that ONNX file with
``openvino.convert_model`` (fp16: ``save_model(compress_to_fp16=True)``). TorchScript is
``torch.jit.trace`` of the same graph. Every export is run once by its own runtime on a batch of
2 and compared with the PyTorch graph before the folder is renamed into place.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from otxlike.deploy.runtime import MODEL_FILES, LoadedModel, graph_runner, load_exported
from otxlike.errors import OtxlikeError
from otxlike.fileio import atomic_write_text
from otxlike.stack import CORE, DEPLOY, versions
from otxlike.workspace.workspace import Workspace

FORMATS = tuple(MODEL_FILES)
PRECISIONS = ("fp32", "fp16")
OPSET = 17
#: What each output holds, for model.json (shapes come from the traced graph).
MEANINGS = {
    "scores": "classification: softmax probabilities per class; detection: score of each detection "
              "(rows after the last detection are 0)",
    "logits": "per-pixel class logits at the input size",
    "labels": "class index (detection: of each detection; segmentation: of each pixel)",
    "boxes": "x1, y1, x2, y2 in input pixels",
    "masks": "per-detection mask probabilities inside its box; resize to the box and threshold",
}


@dataclass
class ExportResult:
    """Where the export went and what it is.

    Attributes:
        folder: ``outputs/<time>_export/``.
        model: The model file in it.
        info: The model.json content.
    """

    folder: Path
    model: Path
    info: dict


def checkpoint_graph(ws: Workspace, checkpoint: Path | None, input_size: tuple[int, int] | None):
    """``(graph, info, checkpoint)``: the export graph of a checkpoint in eval mode and its
    model.json fields (``format``/``model`` left to the caller).

    Args:
        ws: The workspace whose model.py the checkpoint was trained with.
        checkpoint: A ``.pth`` or a training run folder; default: the best one of ``outputs/latest``.
        input_size: (H, W) in pixels; default: ``input_size`` of data_pipeline.py, square.

    Raises:
        OtxlikeError: No checkpoint, one of another model, or an input size the model cannot take.
    """
    import torch

    from otxlike.deploy.graphs import build_graph
    from otxlike.engine.checkpoints import load_model
    from otxlike.models.addins import merge_lora
    from otxlike.workspace.runs import pick_checkpoint

    checkpoint = pick_checkpoint(ws, checkpoint)
    cfg = ws.config()
    size = _input_size(cfg, input_size)
    model = load_model(checkpoint, cfg)
    merge_lora(model)  # LoRA folded into its base layers: the graph has no LoRA branch (docs/addins.md)
    classes = _classes(model, ws)
    try:
        graph = build_graph(model, ws.task, size)
        with torch.no_grad():
            outputs = graph(torch.zeros(1, 3, *size))
    except OtxlikeError:
        raise
    except Exception as exc:
        raise OtxlikeError(f"the model cannot take a {size[0]}x{size[1]} input "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                           "choose another --input-size (data_pipeline.py's input_size always works)") from exc
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    info = model_info(ws, graph, outputs, classes, checkpoint)
    return graph, info, checkpoint


def _input_size(cfg, input_size) -> tuple[int, int]:
    """(H, W) checked against the data preprocessor's padding divisor."""
    if input_size is None:
        side = cfg.get("input_size")  # a positive int when set: Workspace.config() checks it
        if side is None:
            raise OtxlikeError("data_pipeline.py declares no input_size",
                               "pass --input-size H W, or set input_size = <pixels> in data_pipeline.py")
        input_size = (side, side)
    h, w = (int(v) for v in input_size)
    if h <= 0 or w <= 0:
        raise OtxlikeError(f"input size {h}x{w} must be positive", "pass --input-size H W in pixels")
    pre = cfg.model.get("data_preprocessor", {}) or {}
    divisor = int(pre.get("pad_size_divisor", 0) or pre.get("size_divisor", 0) or 1)
    if h % divisor or w % divisor:
        raise OtxlikeError(f"input size {h}x{w} is not a multiple of {divisor}, the model's padding divisor",
                           f"pass --input-size with multiples of {divisor}")
    return h, w


def _classes(model, ws: Workspace) -> list[str]:
    """Class names from the checkpoint's ``meta.dataset_meta`` (:func:`load_model` keeps it), else
    from the workspace's data."""
    classes = (getattr(model, "dataset_meta", None) or {}).get("classes")
    if classes:
        return [str(c) for c in classes]
    from otxlike.engine.config import load_config

    cfg = load_config(ws, ws.outputs, ("train",))
    return [str(c) for c in cfg.train_dataloader.dataset.metainfo["classes"]]


def model_info(ws: Workspace, graph, outputs, classes: list[str], checkpoint: Path) -> dict:
    """The model.json fields that describe a graph: task, classes, input and outputs, source,
    versions (docs/deploy.md)."""
    from otxlike.tasks import get_task
    from otxlike.fileio import timestamp

    norm = graph.normalize
    h, w = graph.input_size
    spec = get_task(ws.task)
    libraries = {"classification": "mmpretrain", "detection": "mmdet", "instance-segmentation": "mmdet",
                 "segmentation": "mmsegmentation"}
    info = {
        "task": ws.task,
        "classes": classes,
        "input": {
            "name": "image", "shape": [-1, 3, h, w], "dtype": "float32", "layout": "NCHW",
            "color_order": "RGB", "range": [0, 255],
            "resize": f"stretch each image to {w}x{h} (width x height), bilinear, no padding",
            "normalization": "inside the model: (x - mean) / std in the network's colour order",
            "mean": [round(float(v), 4) for v in norm.mean.flatten()],
            "std": [round(float(v), 4) for v in norm.std.flatten()],
            "network_color_order": "BGR" if norm.to_bgr else "RGB",
        },
        "outputs": [{"name": name, "shape": [-1, *t.shape[1:]], "dtype": str(t.dtype).replace("torch.", ""),
                     "meaning": MEANINGS[name]} for name, t in zip(graph.output_names, outputs)],
        "metric_keys": list(spec.metrics),
        "source": {"workspace": str(ws.root), "checkpoint": str(checkpoint)},
        "versions": {"otxlike": versions(("otxlike",))["otxlike"],
                     **versions(CORE + (libraries[ws.task],) + DEPLOY)},
        "created": timestamp(),
    }
    if ws.task == "instance-segmentation":
        info["postprocess"] = {"mask_threshold": float(graph.model.test_cfg.rcnn.get("mask_thr_binary", 0.5))}
    if ws.task == "segmentation":
        info["postprocess"] = {"align_corners": bool(graph.model.decode_head.align_corners)}
    if getattr(graph, "multi_label", False):  # MultiLabelClsHead: thr, else 0.5 (mmpretrain's rule)
        head = graph.model.head
        info["postprocess"] = {"multi_label": True, "threshold": float(head.thr if head.thr is not None else 0.5)}
    return info


def export(ws: Workspace, fmt: str = "openvino", checkpoint: Path | None = None, precision: str = "fp32",
           input_size: tuple[int, int] | None = None) -> ExportResult:
    """Export a checkpoint of ``ws`` to ``outputs/<time>_export/``.

    Args:
        ws: The workspace.
        fmt: ``openvino`` (model.xml + model.bin), ``onnx`` or ``torchscript``.
        checkpoint: Default: the best checkpoint of ``outputs/latest``.
        precision: ``fp32``, or ``fp16`` weights (OpenVINO only).
        input_size: (H, W) in pixels; default data_pipeline.py's ``input_size``.

    Returns:
        :class:`ExportResult`; ``info['check']`` holds the largest difference between the
        exported model and the PyTorch graph on a batch of 2.

    Raises:
        OtxlikeError: Bad format/precision/input size, no or a foreign checkpoint, or an exported
            model that does not reproduce the PyTorch outputs. Nothing is left in ``outputs/`` then.
    """
    if fmt not in FORMATS:
        raise OtxlikeError(f"unknown export format '{fmt}'", f"choose one of: {', '.join(FORMATS)}")
    if precision not in PRECISIONS:
        raise OtxlikeError(f"unknown precision '{precision}'", "choose fp32 or fp16 (INT8: 'otxlike optimize')")
    if precision == "fp16" and fmt != "openvino":
        raise OtxlikeError(f"--precision fp16 is for --format openvino, not {fmt}",
                           "use --format openvino, or fp32 (ONNX Runtime and TorchScript on the CPU run fp32)")
    from otxlike.workspace.runs import staged_run_dir

    graph, info, checkpoint = checkpoint_graph(ws, checkpoint, input_size)
    with staged_run_dir(ws, "export") as stage:
        model_file = stage.path / MODEL_FILES[fmt]
        write_model(graph, fmt, model_file, precision)
        info.update(format=fmt, model=model_file.name, precision=precision)
        write_model_json(stage.path, info)
        info["check"] = verify(graph, load_exported(stage.path), precision)
        write_model_json(stage.path, info)
    return ExportResult(stage.final, stage.final / model_file.name, info)


def write_model(graph, fmt: str, model_file: Path, precision: str = "fp32") -> None:
    """Trace ``graph`` into ``model_file`` in ``fmt`` (batch dimension dynamic).

    Raises:
        OtxlikeError: The exporter failed (its first line).
    """
    import torch

    sample = torch.zeros(1, 3, *graph.input_size)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if fmt == "torchscript":
                traced = torch.jit.trace(graph, (sample,), check_trace=False)
                traced.save(str(model_file))
                return
            onnx_file = model_file.with_suffix(".onnx")
            for module in graph.modules():
                if hasattr(module, "onnx"):
                    module.onnx = True
            try:
                torch.onnx.export(graph, (sample,), str(onnx_file), dynamo=False, opset_version=OPSET,
                                  input_names=["image"], output_names=list(graph.output_names),
                                  dynamic_axes={name: {0: "batch"} for name in ("image", *graph.output_names)})
            finally:
                for module in graph.modules():
                    if hasattr(module, "onnx"):
                        module.onnx = False
            import onnx

            onnx.checker.check_model(str(onnx_file))
            if fmt == "openvino":
                import openvino as ov

                ov.save_model(ov.convert_model(str(onnx_file)), str(model_file),
                              compress_to_fp16=precision == "fp16")
                onnx_file.unlink()
    except OtxlikeError:
        raise
    except Exception as exc:
        raise OtxlikeError(f"{fmt} export failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                           "run with --debug for the traceback; docs/deploy.md lists what exports") from exc


def write_model_json(folder: Path, info: dict) -> None:
    atomic_write_text(folder / "model.json", json.dumps(info, indent=2) + "\n")


def verify(graph, exported: LoadedModel, precision: str = "fp32") -> dict:
    """Run ``exported`` and the PyTorch ``graph`` on the same batch of 2 (seeded noise images)
    and compare the main output (``scores``, sorted per image for detection, or ``logits``).

    Returns:
        ``{"batch": 2, "output": name, "max_abs_diff": float}``.

    Raises:
        OtxlikeError: A difference above 1e-3 (fp32) or 5e-2 (fp16), or another output shape.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    batch = rng.uniform(0, 255, (2, 3, *graph.input_size)).astype(np.float32)
    want, got = graph_runner(graph)(batch), exported.run(batch)
    name = "logits" if "logits" in want else "scores"
    a, b = want[name], got[name]
    if a.shape != b.shape:
        raise OtxlikeError(f"the exported model's '{name}' has shape {b.shape}, PyTorch's {a.shape}",
                           "report this with --debug output")
    if name == "scores" and a.ndim == 2 and "boxes" in want:
        a, b = np.sort(a, 1), np.sort(b, 1)
    diff = float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0
    limit = 5e-2 if precision == "fp16" else 1e-3
    if diff > limit:
        raise OtxlikeError(f"the exported model differs from PyTorch by {diff:.2g} in '{name}' (limit {limit})",
                           "report this with --debug output; the checkpoint itself still works")
    return {"batch": 2, "output": name, "max_abs_diff": diff}


def checkpoint_model(ws: Workspace, checkpoint: Path | None = None,
                     input_size: tuple[int, int] | None = None) -> LoadedModel:
    """A checkpoint run through its export graph in PyTorch, with the interface of an exported
    model (:func:`~otxlike.deploy.runtime.load_exported`), for ``predict --checkpoint``.

    Raises:
        OtxlikeError: As :func:`checkpoint_graph`.
    """
    graph, info, checkpoint = checkpoint_graph(ws, checkpoint, input_size)
    info.update(format="checkpoint", model=checkpoint.name, precision="fp32")
    return LoadedModel(info, checkpoint, graph_runner(graph))
