"""Which backbones fit a task: ``otxlike find --backbone LIB --task TASK``.

A backbone fits a task when, with the default values ``build --backbone`` would write, it builds
and runs at the task template's ``input_size`` and its output strides can be adapted to the
template's neck/heads (:func:`otxlike.configedit.adapters.plan_stages`, the rule the swap itself
applies). Probing costs a build and a forward pass per backbone, so results are cached per
library, input size and installed versions, next to the backbone index.
"""

from __future__ import annotations

from pathlib import Path

from otxlike.backbones.spec import BackboneSpec
from otxlike.errors import OtxlikeError


DETAIL_INPUT_SIZE = 128  # pixels: probe size of find's detail view; stride 32 still gives 4x4 maps


def backbones_for(libraries: list[str], task: str | None = None) -> tuple[list[BackboneSpec], int]:
    """The backbones of ``libraries`` (from the index), only those fitting ``task`` if given.

    Returns:
        ``(specs, total)``: the listed specs and how many the libraries have in all.

    Raises:
        OtxlikeError: If a library or the task is unknown, or a library is not installed.
    """
    from otxlike.backbones.catalog import provider
    from otxlike.backbones.index import indexed_backbones

    specs = [s for lib in libraries for s in indexed_backbones(provider(lib))[0]]
    if task is None:
        return specs, len(specs)
    fit = fit_for_task(specs, task)
    return [s for s in specs if fit[s.name] is None], len(specs)


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
        return None, " ".join(str(exc).split())[:200]


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


def _cached_probes(library: str, package: str, input_size: int, specs, backbone_defaults: dict) -> dict:
    from otxlike.backbones.index import index_path, read_cache, write_cache

    path = index_path(library, package, kind=f"probes{input_size}")
    cached = read_cache(path) or {}
    todo = [s for s in specs if s.name not in cached]
    for spec in todo:
        shapes, reason = default_shapes(spec, input_size, backbone_defaults)
        cached[spec.name] = {"strides": list(shapes.strides) if shapes else None, "error": reason}
    if todo:
        write_cache(path, cached)
    return cached


def fit_for_task(specs: list[BackboneSpec], task: str) -> dict[str, str | None]:
    """For each backbone, None if it fits ``task``'s default template, else the reason it does not.

    The verdicts are cached per library, template content and installed versions, so a repeated
    call reads one JSON file and imports no library.

    Raises:
        OtxlikeError: If the task is unknown or its template cannot be loaded.
    """
    import hashlib

    from otxlike.backbones.catalog import provider
    from otxlike.backbones.index import index_path, read_cache, write_cache
    from otxlike.workspace.templates import get_template

    template = get_template(task)
    digest = hashlib.sha256(b"".join((template.path / f).read_bytes()
                                     for f in ("template.yaml", "model.py", "data_pipeline.py"))).hexdigest()[:12]
    result: dict[str, str | None] = {}
    todo: list[BackboneSpec] = []
    paths = {}
    for library in dict.fromkeys(s.library for s in specs):
        paths[library] = index_path(library, provider(library).package, kind=f"fit-{template.id}-{digest}")
        cached = read_cache(paths[library]) or {}
        for spec in (s for s in specs if s.library == library):
            if spec.name in cached:
                result[spec.name] = cached[spec.name]
            else:
                todo.append(spec)
    if todo:
        fresh = _fit_uncached(todo, template)
        result.update(fresh)
        for library, path in paths.items():
            write_cache(path, {n: r for n, r in result.items() if n.split(".", 1)[0] == library})
    return {s.name: result[s.name] for s in specs}


def _fit_uncached(specs: list[BackboneSpec], template) -> dict[str, str | None]:
    """:func:`fit_for_task` without the verdict cache (probes are still cached)."""
    from mmengine.config import Config

    from otxlike.backbones.catalog import provider
    from otxlike.backbones.shapes import infer_feature_shapes
    from otxlike.configedit.adapters import plan_stages

    model_cfg = Config.fromfile(str(Path(template.path) / "model.py"))
    size = int(Config.fromfile(str(Path(template.path) / "data_pipeline.py")).get("input_size", 64))
    model = model_cfg.model.to_dict()
    template_strides = infer_feature_shapes(model["backbone"], model_cfg.default_scope, size).strides
    result: dict[str, str | None] = {}
    for library in dict.fromkeys(s.library for s in specs):
        lib_specs = [s for s in specs if s.library == library]
        probes = _cached_probes(library, provider(library).package, size, lib_specs, template.backbone_defaults)
        for spec in lib_specs:
            probe = probes[spec.name]
            if probe["error"]:
                result[spec.name] = probe["error"]
                continue
            try:
                plan_stages(model, template_strides, tuple(probe["strides"]))
                result[spec.name] = None
            except OtxlikeError as exc:
                result[spec.name] = exc.message
    return result
