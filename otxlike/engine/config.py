"""The run config: the workspace config with data roots, classes and ``work_dir`` filled in."""

from __future__ import annotations

from pathlib import Path

from otxlike.data.formats import apply, get_format
from otxlike.errors import OtxlikeError
from otxlike.workspace.workspace import Workspace


def _num_classes(model: dict, path: str = "model"):
    """Yield ``(path, value)`` of every ``num_classes`` inside the model dict."""
    for key, value in model.items():
        if key == "num_classes":
            yield f"{path}.{key}", value
        elif isinstance(value, dict):
            yield from _num_classes(value, f"{path}.{key}")


def load_config(ws: Workspace, run_dir: Path, splits: tuple[str, ...]):
    """The workspace's merged mmengine ``Config`` with data roots and ``work_dir`` filled in.

    Raises:
        OtxlikeError: If model.py or data_pipeline.py cannot be loaded, or the data is bad.
    """
    cfg = ws.config()
    fmt = get_format(ws.data().get("format", ""), ws.task_spec.data_formats)
    classes = None
    for split in splits:
        loader = cfg.get(f"{split}_dataloader")
        if loader is None:
            raise OtxlikeError(f"data_pipeline.py has no {split}_dataloader", "restore it from the template")
        found = fmt.check(ws.split_entry(split), loader.dataset)
        if classes is not None and found.classes != classes:
            raise OtxlikeError(f"{split} classes {found.classes} differ from train classes {classes}",
                               "every split needs the same classes")
        classes = found.classes
        apply(loader.dataset, cfg.get(f"{split}_evaluator"), found)
    for path, value in _num_classes(cfg.model):
        if value != len(classes):
            raise OtxlikeError(
                f"model.py has {path}={value} but the data has {len(classes)} classes",
                f"set num_classes={len(classes)} in model.py, or rerun 'otxlike build --train-data-roots DIR'",
            )
    cfg.work_dir = str(run_dir)
    return cfg

