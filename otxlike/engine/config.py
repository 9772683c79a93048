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
    check_registered(cfg, splits)
    cfg.work_dir = str(run_dir)
    return cfg


def check_registered(cfg, splits: tuple[str, ...]) -> None:
    """Refuse a dataset, transform or metric ``type`` of the splits' dataloaders and evaluators
    that the config's default scope does not know, before the Runner starts (it would only fail
    when the first batch is built, issue 11).

    Raises:
        OtxlikeError: Naming the type, where it is, and the closest registered names.
    """
    import difflib

    from mmengine.registry import DATASETS, METRICS, TRANSFORMS

    from otxlike.workspace.workspace import config_scope

    scope = config_scope(cfg)

    def check(registry, kind: str, item, where: str) -> None:
        name = item.get("type") if isinstance(item, dict) else None
        if not isinstance(name, str):
            return
        with registry.switch_scope_and_registry(scope) as found:
            if found.get(name) is not None:
                return
            names = set(found.module_dict) | set(registry.module_dict)
        close = difflib.get_close_matches(name, sorted(names), n=3)
        raise OtxlikeError(f"{where}: {kind} type '{name}' is not registered in {scope}",
                           f"did you mean {' or '.join(close)}?" if close else "fix the type in data_pipeline.py")

    for split in splits:
        dataset = (cfg.get(f"{split}_dataloader") or {}).get("dataset") or {}
        check(DATASETS, "dataset", dataset, f"{split}_dataloader.dataset")
        for i, transform in enumerate(dataset.get("pipeline") or []):
            check(TRANSFORMS, "transform", transform, f"{split}_dataloader.dataset.pipeline[{i}]")
        evaluator = cfg.get(f"{split}_evaluator")
        for item in evaluator if isinstance(evaluator, list) else [evaluator]:
            check(METRICS, "metric", item, f"{split}_evaluator")

