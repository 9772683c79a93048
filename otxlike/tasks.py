"""What a task is, in one table: :data:`TASK_SPECS`.

Adding a task is one :class:`TaskSpec` here and one template folder under ``templates/<task>/``
(plus a data format in :mod:`otxlike.data.formats` if the task's data comes in a new one).
Everything else (the CLI's task names and short names, the sample data, the dry run that
validates a rewritten model, the metric a run is judged by) reads this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from otxlike.errors import OtxlikeError


@dataclass(frozen=True)
class TaskSpec:
    """One task a workspace can be built for.

    Attributes:
        name: The name users type (``otxlike build --task``), e.g. ``instance-segmentation``.
        short: Short name for narrow table columns, e.g. ``inst-seg``.
        data_formats: Names of the :mod:`otxlike.data.formats` its data can come in, in the order
            they are tried when detecting; the first is the templates'.
        dry_run: How a whole model of the task is run once to validate a rewrite: ``tensor``
            (``model(x, mode='tensor')``: classifiers, mmseg segmentors) or ``predict`` (mmdet
            detectors, whose two-stage heads need image metadata).
        sample: Which sample writer of :mod:`otxlike.data.digits` makes its data: ``digits``
            (a folder per class) or ``canvases`` (digits pasted on canvases, COCO JSON and label maps).
        metrics: Metric keys as the task's evaluator reports them, the main one first
            (mmpretrain ``Accuracy``, mmdet ``CocoMetric``, mmseg ``IoUMetric``); all of them
            are higher-is-better.
        metric_scale: The value of a perfect score of those metrics: 100 (percent: accuracy,
            mIoU) or 1 (COCO mAP).
        head_key: The key under ``model`` that ``build --head`` swaps, or None if the task has
            no single head to swap.
    """

    name: str
    short: str
    data_formats: tuple[str, ...]
    dry_run: str
    sample: str
    metrics: tuple[str, ...]
    metric_scale: float
    head_key: str | None = None

    @property
    def metric(self) -> str:
        """The main metric key, e.g. ``accuracy/top1``."""
        return self.metrics[0]

    def write_sample(self, root: Path, *, size: int | None = None, num_train: int = 200, num_val: int = 50,
                     seed: int = 0, limit: int | None = None):
        """Write this task's sample data (scikit-learn's digits) under ``root``.

        Args:
            root: Output folder (``train/`` and ``val/`` go in it).
            size: Image side in pixels (default 32 for digits, 128 for canvases).
            num_train: Canvases in train (canvas tasks).
            num_val: Canvases in val (canvas tasks).
            seed: Seed of the split and the layout.
            limit: At most this many images per class (digits).

        Returns:
            :class:`~otxlike.data.digits.SampleDataset` or :class:`~otxlike.data.digits.CanvasDataset`.

        Raises:
            OtxlikeError: If ``root`` already holds a split or an argument is out of range.
        """
        from otxlike.data.digits import write_digits_canvases, write_digits_classification

        if self.sample == "digits":
            return write_digits_classification(root, size=size or 32, seed=seed, limit=limit)
        return write_digits_canvases(root, num_train=num_train, num_val=num_val, canvas=size or 128, seed=seed)


def _coco(kind: str) -> tuple[str, ...]:
    """``CocoMetric``'s keys for one kind (``mmdet/evaluation/metrics/coco_metric.py``)."""
    return tuple(f"coco/{kind}_mAP{s}" for s in ("", "_50", "_75", "_s", "_m", "_l"))


TASK_SPECS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("classification", "cls", ("imagenet", "ann-list", "csv"), "tensor", "digits", ("accuracy/top1",), 100, head_key="head"),
    TaskSpec("detection", "det", ("coco", "voc", "yolo"), "predict", "canvases", _coco("bbox"), 1),
    TaskSpec("instance-segmentation", "inst-seg", ("coco", "yolo"), "predict", "canvases", _coco("segm") + _coco("bbox"), 1),
    # mmseg/evaluation/metrics/iou_metric.py with iou_metrics=['mIoU']
    TaskSpec("segmentation", "seg", ("mmseg", "cityscapes", "ade20k", "voc-seg", "coco-seg"), "tensor", "canvases", ("mIoU", "aAcc", "mAcc"), 100),
)}
"""Tasks by name, in the order the CLI lists them."""

TASKS = tuple(TASK_SPECS)
"""The task names (``otxlike build --task``)."""


def get_task(name: str) -> TaskSpec:
    """The task called ``name``.

    Raises:
        OtxlikeError: If it is not one of :data:`TASKS`.
    """
    if name not in TASK_SPECS:
        raise OtxlikeError(f"unknown task '{name}'", f"choose one of: {', '.join(TASKS)}")
    return TASK_SPECS[name]
