"""``otxlike optimize``: an OpenVINO export quantized to INT8 with NNCF post-training quantization.

Follows NNCF's OpenVINO post-training quantization flow (``nncf.quantize(model, nncf.Dataset(...),
subset_size=...)``, nncf/quantization/quantize_model.py; OTX 1.x did the same for ``otx optimize``):
activation ranges are calibrated on images of the train split, passed through the test pipeline
(no augmentation) at the exported input size. The INT8 model and the FP32 one it came from are then
evaluated on val with the same metric code (:mod:`otxlike.deploy.evaluate`) and timed on the same
batch, and the accuracy drop and speed-up are recorded in the new folder's model.json and
metrics.json.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from otxlike.deploy.runtime import LoadedModel, load_exported, throughput
from otxlike.errors import OtxlikeError
from otxlike.workspace.workspace import Workspace


@dataclass
class OptimizeResult:
    """The INT8 export and how it compares with its FP32 source.

    Attributes:
        folder: ``outputs/<time>_optimize/`` (model.xml, model.bin, model.json, metrics.json).
        model: The INT8 model.xml.
        report: ``metric`` (key), ``fp32`` / ``int8`` (its values), ``drop`` (fp32 - int8, in the
            metric's unit), ``fp32_fps`` / ``int8_fps`` (images/s at ``batch``), ``speedup``,
            ``subset_size`` (calibration images).
    """

    folder: Path
    model: Path
    report: dict


def latest_export(ws: Workspace) -> Path:
    """The newest FP32 OpenVINO export folder of ``ws``: ``outputs/<time>_export[_n]/``, by name.

    Hidden folders are skipped: ``.<time>_export.XXXX.partial`` is the staging folder of an export
    that has not finished (or was killed), whose model.json is written before the export is
    verified (:func:`otxlike.fileio.staged_dir`, :func:`otxlike.deploy.export.export`).

    Raises:
        OtxlikeError: None exists.
    """
    found = []
    for folder in ws.outputs.glob("*_export*") if ws.outputs.is_dir() else []:
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            info = json.loads((folder / "model.json").read_text())
        except (OSError, ValueError):
            continue
        if info.get("format") == "openvino" and info.get("precision") == "fp32":
            found.append(folder)
    if not found:
        raise OtxlikeError("no FP32 OpenVINO export in outputs/", "run 'otxlike export' first, or pass --model")
    return max(found, key=lambda f: f.name)


def calibration_batches(ws: Workspace, model: LoadedModel, subset_size: int, seed: int = 0) -> list:
    """Up to ``subset_size`` train images, each a float32 (1, 3, H, W) RGB array at the model's
    input size, chosen at random (seeded) and read through the test pipeline.

    Raises:
        OtxlikeError: Bad data (the workspace's checks).
    """
    import numpy as np

    from otxlike.deploy.evaluate import model_inputs, stretched_dataset
    from otxlike.engine.config import load_config

    cfg = load_config(ws, ws.outputs, ("train",))
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.pop("filter_cfg", None)
    with contextlib.redirect_stdout(io.StringIO()):  # (pycocotools prints while it indexes)
        dataset = stretched_dataset(cfg, dataset_cfg, cfg.test_dataloader.dataset.pipeline, model.input_size)
        picks = np.random.default_rng(seed).permutation(len(dataset))[:subset_size]
        return [model_inputs([dataset[int(i)]]) for i in picks]


def optimize(ws: Workspace, model: Path | None = None, subset_size: int = 300, batch: int = 8) -> OptimizeResult:
    """Quantize an FP32 OpenVINO export of ``ws`` to INT8 into ``outputs/<time>_optimize/``.

    Args:
        ws: The workspace (calibration and validation data, metric).
        model: An FP32 OpenVINO export (folder or model.xml); default: the newest one.
        subset_size: Calibration images from the train split (at most the split's size).
        batch: Batch size of the speed measurement.

    Raises:
        OtxlikeError: No or a non-OpenVINO / non-FP32 model, ``subset_size`` < 1, a model of
            another task, or NNCF failing. Nothing is left in ``outputs/`` then.
    """
    if subset_size < 1:
        raise OtxlikeError(f"--subset-size {subset_size} must be >= 1", "e.g. --subset-size 300")
    source = load_exported(Path(model) if model is not None else latest_export(ws))
    if source.info["format"] != "openvino" or source.info.get("precision") != "fp32":
        raise OtxlikeError(f"{source.path.name} is a {source.info['format']} {source.info.get('precision')} model; "
                           "optimize quantizes FP32 OpenVINO models", "export one with 'otxlike export --format openvino'")
    from otxlike.deploy.evaluate import check_matches, model_metrics
    from otxlike.deploy.export import write_model_json
    from otxlike.workspace.runs import staged_run_dir, write_metrics

    check_matches(source, ws, source.info["classes"])  # the task; model_metrics checks the classes against the data
    items = calibration_batches(ws, source, subset_size)
    import nncf
    import numpy as np
    import openvino as ov

    with staged_run_dir(ws, "optimize") as stage:
        chatter = io.StringIO()  # NNCF's progress bars and log lines: to the folder's log, not the console
        try:
            with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                nncf.set_log_level(logging.WARNING)
                quantized = nncf.quantize(ov.Core().read_model(str(source.path)), nncf.Dataset(items),
                                          subset_size=len(items))
        except Exception as exc:
            raise OtxlikeError(f"NNCF quantization failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                               "run with --debug for the traceback") from exc
        (stage.path / "nncf.log").write_text(chatter.getvalue())
        ov.save_model(quantized, str(stage.path / "model.xml"), compress_to_fp16=False)
        info = {**source.info, "precision": "int8", "model": "model.xml"}
        info.pop("check", None)
        write_model_json(stage.path, info)
        int8 = load_exported(stage.path)
        metric = ws.task_spec.metric
        before = model_metrics(ws, source, "val", batch, stage.path)
        after = model_metrics(ws, int8, "val", batch, stage.path)
        timing = np.concatenate((items * batch)[:batch])
        fp32_fps, int8_fps = throughput(source, timing), throughput(int8, timing)
        report = {"metric": metric, "fp32": before.get(metric), "int8": after.get(metric),
                  "drop": (before.get(metric, 0.0) - after.get(metric, 0.0)), "fp32_fps": round(fp32_fps, 2),
                  "int8_fps": round(int8_fps, 2), "speedup": round(int8_fps / fp32_fps, 3), "batch": batch,
                  "subset_size": len(items), "calibration_split": "train", "source": str(source.path)}
        info["optimize"] = report
        write_model_json(stage.path, info)
        write_metrics(stage.path, after, None, model="model.xml", fp32_metrics=before, optimize=report)
    ws.record("optimize", {"run": stage.final.name, "metrics": after, "optimize": report})
    return OptimizeResult(stage.final, stage.final / "model.xml", report)
