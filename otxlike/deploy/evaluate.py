"""``otxlike eval --model``: an exported model evaluated with the same dataset and metric code as a checkpoint.

The workspace's val (or test) dataset and evaluator are built from its config with mmengine's
registries, as the Runner's test loop builds them (``mmengine/runner/loops.py``: ``TestLoop``), with
one change: each ``Resize`` stretches to the exported input size (the exported model's contract,
docs/deploy.md). The model's outputs become the data samples the task's metric reads
(``pred_score``; ``pred_instances`` rescaled to the original image, masks pasted with mmdet's
``_do_paste_mask``; ``pred_sem_seg`` from logits resized like mmseg's ``postprocess_result``).
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

from otxlike.deploy.runtime import LoadedModel, load_exported
from otxlike.engine.config import load_config
from otxlike.engine.hooks import complete_metrics
from otxlike.engine.runner import RunResult
from otxlike.errors import OtxlikeError
from otxlike.workspace.runs import run_dir_or_nothing, write_metrics
from otxlike.workspace.workspace import Workspace, config_scope


def stretch_pipeline(pipeline: list, input_size: tuple[int, int]) -> list:
    """``pipeline`` with every ``Resize`` stretching to ``input_size`` (H, W), ratio not kept.

    Raises:
        OtxlikeError: The pipeline has no ``Resize`` (the exported model needs its exact size).
    """
    h, w = input_size
    out, found = [], False
    for step in pipeline:
        step = dict(step)
        if str(step.get("type", "")).split(".")[-1] == "Resize":
            step.update(scale=(w, h), keep_ratio=False)
            found = True
        out.append(step)
    if not found:
        raise OtxlikeError("the test pipeline of data_pipeline.py has no Resize",
                           "add dict(type='Resize', scale=(input_size, input_size)) after LoadImageFromFile")
    return out


def stretched_dataset(cfg, dataset_cfg, pipeline: list, input_size: tuple[int, int]):
    """The mmengine dataset of ``dataset_cfg`` read through ``pipeline`` stretched to ``input_size``
    (:func:`stretch_pipeline`), built in the config's default scope."""
    from mmengine.registry import DATASETS, DefaultScope

    dataset_cfg.pipeline = stretch_pipeline(pipeline, input_size)
    with DefaultScope.overwrite_default_scope(config_scope(cfg)):
        return DATASETS.build(dataset_cfg)


def model_inputs(items: list):
    """The exported model's batch for dataset items: float32 (N, 3, H, W) RGB 0..255 from the
    pipeline's BGR uint8 ``inputs`` (``LoadImageFromFile`` reads BGR)."""
    import numpy as np

    return np.ascontiguousarray(np.stack([item["inputs"].numpy()[::-1] for item in items]), dtype=np.float32)


def predictions(task: str, outputs: dict, samples: list, info: dict) -> list:
    """Fill each data sample with its image's predictions, in original image coordinates.

    Args:
        task: The workspace task.
        outputs: The model's outputs for the batch (numpy, first axis = the samples).
        samples: mmpretrain / mmdet / mmseg data samples with ``ori_shape`` (and
            ``scale_factor`` for detection) in their metainfo.
        info: model.json (``postprocess`` thresholds).
    """
    import torch
    from torch.nn import functional as F

    for i, sample in enumerate(samples):
        if task == "classification":
            scores = torch.from_numpy(outputs["scores"][i])
            sample.set_pred_score(scores).set_pred_label(scores.argmax().reshape(1))
        elif task == "segmentation":
            from mmengine.structures import PixelData

            logits = torch.from_numpy(outputs["logits"][i])[None]
            logits = F.interpolate(logits, size=tuple(sample.metainfo["ori_shape"][:2]), mode="bilinear",
                                   align_corners=bool(info.get("postprocess", {}).get("align_corners", False)))
            sample.pred_sem_seg = PixelData(data=logits[0].argmax(0, keepdim=True))
        else:
            from mmengine.structures import InstanceData

            keep = outputs["scores"][i] > 0
            boxes = torch.from_numpy(outputs["boxes"][i][keep])
            sx, sy = sample.metainfo.get("scale_factor", (1.0, 1.0))
            boxes = boxes / boxes.new_tensor([sx, sy, sx, sy])
            pred = InstanceData(bboxes=boxes, scores=torch.from_numpy(outputs["scores"][i][keep]),
                                labels=torch.from_numpy(outputs["labels"][i][keep]).long())
            if "masks" in outputs:
                pred.masks = paste_masks(outputs["masks"][i][keep], boxes, sample.metainfo["ori_shape"][:2],
                                         info.get("postprocess", {}).get("mask_threshold", 0.5))
            sample.pred_instances = pred
    return samples


def paste_masks(masks, boxes, size: tuple[int, int], threshold: float):
    """(D, h, w) box-relative probabilities -> (D, H, W) bool image masks (mmdet ``FCNMaskHead``'s
    ``_do_paste_mask``, then ``>= threshold``)."""
    import torch
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

    if len(boxes) == 0:
        return torch.zeros((0, *size), dtype=torch.bool)
    pasted, _ = _do_paste_mask(torch.from_numpy(masks)[:, None], boxes, int(size[0]), int(size[1]), skip_empty=False)
    return pasted >= threshold


def check_matches(model: LoadedModel, ws: Workspace, classes: list[str]) -> None:
    """Refuse an exported model of another task or other classes than the workspace's data.

    Raises:
        OtxlikeError: Task or class names differ.
    """
    if model.task != ws.task:
        raise OtxlikeError(f"{model.path.name} is a {model.task} model, this workspace is {ws.task}",
                           "evaluate it in the workspace it was exported from")
    if list(model.info.get("classes", [])) != list(classes):
        raise OtxlikeError(f"{model.path.name} was trained on classes {model.info.get('classes')}, the data has {list(classes)}",
                           "evaluate it on the data it was trained for")


def evaluate_model(ws: Workspace, model: Path | LoadedModel, split: str = "val", batch_size: int = 8) -> RunResult:
    """Evaluate an exported model on ``split`` of the workspace's data.

    Args:
        ws: The workspace (its data and metric).
        model: An export folder / model file (:func:`~otxlike.deploy.runtime.load_exported`) or
            a loaded model.
        split: ``val`` or ``test``.
        batch_size: Images per inference call.

    Returns:
        :class:`~otxlike.engine.runner.RunResult` (``checkpoint`` = the model file), metrics also
        in ``<run_dir>/metrics.json`` and the workspace history.

    Raises:
        OtxlikeError: Bad split, a model of another task or classes, bad data.
    """
    if split not in ("val", "test"):
        raise OtxlikeError(f"unknown split '{split}'", "choose val or test")
    loaded = model if isinstance(model, LoadedModel) else load_exported(Path(model))
    start = time.perf_counter()
    with run_dir_or_nothing(ws, "eval", f"evaluation of {loaded.path.name} failed",
                            "is the model exported from this workspace?") as run_dir:
        metrics = model_metrics(ws, loaded, split, batch_size, run_dir)
    write_metrics(run_dir, metrics, None, model=str(loaded.path), format=loaded.info["format"],
                  precision=loaded.info.get("precision"))
    ws.record("eval", {"run": run_dir.name, "model": str(loaded.path), "metrics": metrics})
    return RunResult(run_dir, loaded.path, metrics, time.perf_counter() - start)


def model_metrics(ws: Workspace, model: LoadedModel, split: str, batch_size: int, run_dir: Path) -> dict:
    """The metrics of ``model`` on ``split`` (what :func:`evaluate_model` reports), logging the
    metrics' own output to ``run_dir/eval.log``; no run folder or history entry of its own.

    Raises:
        OtxlikeError: A model of another task or classes, bad data.
    """
    from mmengine.evaluator import Evaluator
    from mmengine.logging import MMLogger
    from mmengine.registry import DefaultScope

    cfg = load_config(ws, run_dir, ("train", split))
    loader = cfg.val_dataloader if split == "val" else cfg.test_dataloader
    evaluator_cfg = cfg.val_evaluator if split == "val" else cfg.test_evaluator
    check_matches(model, ws, cfg.train_dataloader.dataset.metainfo["classes"])
    logger = MMLogger.get_instance(f"otxlike-eval-{run_dir.name}", log_file=str(run_dir / "eval.log"))
    for handler in list(logger.handlers):  # the metrics' tables go to the log file only
        if type(handler).__name__ == "StreamHandler":
            logger.removeHandler(handler)
    chatter = io.StringIO()
    with DefaultScope.overwrite_default_scope(config_scope(cfg)), contextlib.redirect_stdout(chatter):
        dataset = stretched_dataset(cfg, loader.dataset, loader.dataset.pipeline, model.input_size)
        evaluator = Evaluator(evaluator_cfg)
        evaluator.dataset_meta = dataset.metainfo
        for first in range(0, len(dataset), batch_size):
            items = [dataset[i] for i in range(first, min(first + batch_size, len(dataset)))]
            samples = predictions(ws.task, model.run(model_inputs(items)), [item["data_samples"] for item in items],
                                  model.info)
            evaluator.process(samples)
        metrics = evaluator.evaluate(len(dataset))
    for line in chatter.getvalue().splitlines():
        logger.info(line)
    return complete_metrics(evaluator_cfg, metrics)
