"""Which backbones work for a task: ``otxlike find --backbone LIB --task TASK [--all]``.

A backbone is listed for a task when it passed the end-to-end check of :mod:`otxlike.verify`
(swap, train, eval) recorded in the shipped compatibility matrix (``make compat``). Reading the
matrix and the backbone index imports no library.
"""

from __future__ import annotations

from dataclasses import dataclass

from otxlike.backbones.spec import BackboneSpec
from otxlike.errors import OtxlikeError, one_line


DETAIL_INPUT_SIZE = 128  # pixels: probe size of find's detail view; stride 32 still gives 4x4 maps


@dataclass(frozen=True)
class Listed:
    """A backbone as ``find`` lists it.

    Attributes:
        spec: The backbone.
        tasks: Tasks it passed in the matrix, in :data:`otxlike.TASKS` order.
        failures: ``{task: one-line reason}`` for the tasks it failed.
    """

    spec: BackboneSpec
    tasks: tuple[str, ...]
    failures: dict


def backbones_for(libraries: list[str], task: str | None = None, show_all: bool = False) -> tuple[list[Listed], dict]:
    """The backbones of ``libraries`` (from the index) with their verified tasks.

    Args:
        libraries: Provider names.
        task: If given (and not ``show_all``), only backbones that passed this task.
        show_all: List every backbone, failures included.

    Returns:
        ``(listed, counts)``: the listed backbones, and ``counts`` with ``total`` (backbones of
        the libraries), ``failed`` and ``unchecked`` (for ``task``; 0 without one).

    Raises:
        OtxlikeError: If a library is unknown or not installed.
    """
    from otxlike import TASKS
    from otxlike.backbones.catalog import provider
    from otxlike.backbones.index import indexed_backbones
    from otxlike.verify import load_matrix, task_status

    matrix = load_matrix()
    listed = []
    for spec in (s for lib in libraries for s in indexed_backbones(provider(lib))[0]):
        status = {t: task_status(spec.name, t, matrix) for t in TASKS}
        listed.append(Listed(spec, tuple(t for t in TASKS if status[t] == "pass"),
                             {t: r for t, r in status.items() if r not in (None, "pass")}))
    counts = {"total": len(listed),
              "failed": sum(task in item.failures for item in listed),
              "unchecked": sum(task is not None and task not in item.tasks and task not in item.failures
                               for item in listed)}
    if task is None or show_all:
        return listed, counts
    return [item for item in listed if task in item.tasks], counts


def default_shapes(spec: BackboneSpec, input_size: int, backbone_defaults: dict | None = None):
    """Output shapes of ``spec`` built with the values ``build --backbone`` would write.

    Returns:
        ``(shapes, None)``, or ``(None, one-line reason)`` when it needs input or fails.
    """
    from otxlike.backbones.catalog import provider
    from otxlike.backbones.shapes import infer_feature_shapes
    from otxlike.configedit.swap import default_values, model_values

    values, missing = default_values(spec, backbone_defaults)
    if missing:
        return None, f"needs input: {', '.join(missing)}"
    try:
        cfg = provider(spec.library).model_cfg(spec, model_values(spec, values))
        scope = spec.library if spec.library.startswith("mm") else "mmengine"
        return infer_feature_shapes(cfg, scope, input_size), None
    except OtxlikeError as exc:
        return None, one_line(exc, 200)


def describe_backbone(name: str, input_size: int = DETAIL_INPUT_SIZE):
    """A backbone's spec and its output shapes with default arguments, for ``find`` detail views.

    Args:
        name: Full name, e.g. ``mmdet.ResNet``.
        input_size: Side of the probe input in pixels.

    Returns:
        ``(spec, shapes, reason)``: the live :class:`BackboneSpec`, its
        :class:`~otxlike.backbones.shapes.FeatureShapes` (None when it cannot be built with
        defaults) and the one-line reason in that case.

    Raises:
        OtxlikeError: If the name is unknown.
    """
    from otxlike.backbones.catalog import get_backbone

    spec = get_backbone(name)
    return (spec, *default_shapes(spec, input_size))
