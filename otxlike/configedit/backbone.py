"""``otxlike build --backbone``: put a backbone into a workspace's model.py, adapting its readers."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from otxlike.catalog.shapes import FeatureShapes
from otxlike.catalog.spec import BackboneSpec
from otxlike.configedit.commit import commit, is_yaml_target, read_typed_entry, user_file
from otxlike.errors import OtxlikeError
from otxlike.fileio import dump_yaml
from otxlike.workspace.workspace import Workspace

#: The key of backbone.yaml (and the builder argument of torchvision models) that says where the
#: backbone's weights come from; otxlike handles it, it is not passed to the class.
WEIGHTS_KEY = "weights"


@dataclass(frozen=True)
class SwapResult:
    """What ``swap_backbone`` did.

    Attributes:
        spec: The backbone.
        values: Its argument values as in ``backbone.yaml`` (without ``type``).
        missing: Required arguments with no value yet; when non-empty model.py was not changed.
        shapes: Measured output shapes of the backbone (None when ``missing``).
        edits: ``{consumer: {arg: value}}`` set on the modules reading the backbone.
        files: Files written.
        backup: Folder holding the previous versions of overwritten files, if any.
        weights: The backbone's ``init_cfg`` (pretrained checkpoint) as written, or None.
    """

    spec: BackboneSpec
    values: dict
    missing: tuple[str, ...] = ()
    shapes: FeatureShapes | None = None
    edits: dict = field(default_factory=dict)
    files: tuple[Path, ...] = ()
    backup: Path | None = None
    weights: dict | None = None


def backbone_yaml_text(spec: BackboneSpec, values: dict, missing: tuple[str, ...], weights: str = "auto") -> str:
    """The text of ``backbone.yaml``: OTX's ``backbone: {type: ..., ...}`` with guiding comments;
    ``weights`` (not an argument of the class) says where the backbone starts from."""
    lines = [
        f"# backbone.yaml: the backbone of this workspace ({spec.name}).",
        f"# Source: {spec.source}",
        "# Edit the values, then apply them with: otxlike build --backbone backbone.yaml",
        "# weights: auto (the library's published weights"
        + (f": {spec.weights} for the default arguments" if spec.weights else "; it publishes none")
        + "), none, or a checkpoint path / URL",
    ]
    from otxlike.catalog.presets import presets_of

    for arg in spec.required:
        opts = ", ".join(map(str, arg.options)) if arg.options else "none known: enter a value"
        lines.append(f"# Required: {arg.name} (options: {opts})")
        for preset in presets_of(spec, arg.name):
            extra = "".join(f", {k}={v}" for k, v in (preset.get("with") or {}).items())
            lines.append(f"#   {preset['name']}: the value in {preset['config']}"
                         + (f" (which also sets{extra[1:]})" if extra else ""))
    body = dump_yaml({"backbone": {"type": spec.name, "weights": weights, **values}}).splitlines()
    for i, line in enumerate(body):
        key = line.strip().split(":", 1)[0]
        if line.startswith("  ") and not line.startswith("   ") and key in missing:
            body[i] = f"{line}  # REQUIRED: fill this in"
    return "\n".join(lines + body) + "\n"


def read_backbone_yaml(path: Path) -> tuple[BackboneSpec, dict, str]:
    """Parse and check a user's ``backbone.yaml``: the backbone, its argument values, and its
    ``weights`` choice (``auto`` when absent, ``none`` for null).

    Raises:
        OtxlikeError: If the file is missing or not YAML, has no ``backbone.type``, names an unknown
            backbone, or sets arguments the backbone does not take.
    """
    from otxlike.catalog.lookup import get_backbone

    values = read_typed_entry(path, "backbone", " such as mmdet.ResNet",
                              "otxlike build --backbone <library>.<Name>")
    spec = get_backbone(values.pop("type"))
    weights = values.pop(WEIGHTS_KEY, "auto")
    weights = "none" if weights is None else str(weights)
    unknown = [k for k in values if spec.arg(k) is None]
    if unknown and not spec.accepts_kwargs:
        raise OtxlikeError(
            f"{path}: {spec.name} takes no argument {', '.join(map(repr, unknown))}",
            f"its arguments: {', '.join(a.name for a in spec.args)}",
        )
    return spec, values, weights


def old_strides(model: dict, scope: str, input_size: int) -> tuple[int, ...] | None:
    """Output strides of the backbone now in model.py, or None if it does not build."""
    from otxlike.catalog.shapes import infer_feature_shapes

    try:
        return infer_feature_shapes(model["backbone"], scope, input_size).strides
    except (OtxlikeError, KeyError):
        return None


@dataclass(frozen=True)
class BackbonePlan:
    """How a backbone goes into a model, from :func:`plan_backbone`.

    Attributes:
        cfg: The ``model.backbone`` dict (without ``init_cfg``), outputs picked.
        values: The argument values for ``backbone.yaml``, with the ``out_indices`` chosen.
        shapes: Channels and strides of the outputs the model reads.
        edits: ``{consumer: {arg: value}}`` to set on the modules reading the backbone.
    """

    cfg: dict
    values: dict
    shapes: FeatureShapes
    edits: dict


def plan_backbone(lib, spec: BackboneSpec, values: dict, model: dict, strides: tuple[int, ...] | None,
                  scope: str, input_size: int, keep=(), shapes_of=None) -> BackbonePlan:
    """Plan a backbone swap without writing anything: the steps ``build --backbone`` takes and
    the "fits" tier of the compatibility matrix checks (:mod:`otxlike.compat.fits`).

    1. Build the backbone with ``values`` in the workspace's default ``scope`` and run a
       (2, 3, input_size, input_size) batch through it (``shapes_of``).
    2. Match its output strides to ``strides``, those of the backbone it replaces
       (:func:`~otxlike.configedit.adapters.plan_stages`). If the model's neck needs strides the
       defaults do not give (or the defaults give no feature maps), ask the provider for every
       stage (``all_outputs``: mmpretrain's backbones default to their last stage, some pooled)
       and match again. Of several outputs at one stride, the match takes the last (mmpretrain's
       MobileNetV2, widened to ``out_indices`` 0..7, keeps ``(1, 2, 4, 7)``).
    3. Keep only the outputs the model reads (the provider's ``select_outputs``), and plan the
       ``in_channels`` edits of their readers (:func:`~otxlike.configedit.adapters.plan_channel_edits`).

    Args:
        lib: The backbone's provider (:func:`otxlike.catalog.lookup.provider`).
        spec: The backbone.
        values: Its argument values (backbone.yaml's, without ``weights``).
        model: The workspace's ``model`` dict.
        strides: Output strides of the backbone being replaced (None if unknown).
        scope: The workspace's default scope.
        input_size: The workspace's input side in pixels.
        keep: Arguments written even when equal to their default (the template's
            ``backbone_defaults``).
        shapes_of: ``(cfg, scope, input_size) -> FeatureShapes``; default
            :func:`~otxlike.catalog.shapes.infer_feature_shapes` (fits passes a cached one).

    Raises:
        OtxlikeError: The backbone does not build or run at ``input_size``, lacks a stride the
            model uses (the error of its default outputs), or its readers cannot be adapted.
    """
    from otxlike.catalog.shapes import infer_feature_shapes
    from otxlike.catalog.values import model_values
    from otxlike.configedit.adapters import MULTI_SCALE, first_consumer, plan_channel_edits, plan_stages

    shapes_of = shapes_of or infer_feature_shapes
    cfg = lib.model_cfg(spec, model_values(spec, values, keep=keep))
    try:
        shapes = shapes_of(cfg, scope, input_size)
        stages = plan_stages(model, strides, shapes.strides)
    except OtxlikeError as lacking:
        wide = lib.all_outputs(spec, cfg)
        if wide is None:
            raise
        try:
            wide_shapes = shapes_of(wide, scope, input_size)
            stages = plan_stages(model, strides, wide_shapes.strides)
        except OtxlikeError:
            raise lacking from None  # the default outputs' error says what the model needs
        cfg, shapes = wide, wide_shapes
        values = {**values, **{k: v for k, v in wide.items() if k in values and k != "type"}}
        consumer = first_consumer(model)
        if stages.keep is None and (consumer is None or consumer[1] not in MULTI_SCALE):
            stages = replace(stages, keep=(len(shapes.strides) - 1,))  # a classifier reads the last map
    if stages.keep is not None:
        cfg = lib.select_outputs(spec, cfg, values, stages.keep)
        shapes = FeatureShapes(tuple(shapes.channels[i] for i in stages.keep),
                               tuple(shapes.strides[i] for i in stages.keep))
    if "out_indices" in cfg and "out_indices" in values:
        values = {**values, "out_indices": list(cfg["out_indices"])}
    edits = plan_channel_edits(model, shapes)
    for consumer, args in stages.edits.items():
        edits.setdefault(consumer, {}).update(args)
    return BackbonePlan(cfg, values, shapes, edits)


def _weights_init(lib, spec: BackboneSpec, values: dict, choice: str, backbone_cfg: dict, scope: str) -> dict | None:
    """The backbone's ``init_cfg`` for a ``weights`` choice: ``auto`` (the library's published
    weights, looked up for ``values``; loaded or warned about at train time), ``none``, or a
    checkpoint the user names (loaded now: it must exist and hold tensors of this backbone)."""
    if choice == "auto":
        return lib.pretrained(spec, values)
    if choice == "none":
        return None
    from mmengine.registry import MODELS, DefaultScope

    from otxlike.engine.weights import explicit

    with DefaultScope.overwrite_default_scope(scope):
        module = MODELS.build(dict(backbone_cfg))
    return explicit(choice, module)


def swap_backbone(ws: Workspace, target: str, weights: str | None = None) -> SwapResult:
    """Put a backbone into the workspace.

    Args:
        ws: The workspace.
        target: A backbone name (``mmdet.RegNet``) or the path of an edited ``backbone.yaml``.
        weights: Where the backbone starts from: ``auto`` (the published weights of its library,
            when there are any: torchvision's DEFAULT, mmdet/mmseg's ImageNet checkpoints), ``none``
            (random initialisation), or a checkpoint path / URL / mmengine name (e.g. the
            ``best_*.pth`` of another otxlike workspace, whose ``backbone.`` part is taken).
            Default: backbone.yaml's ``weights``, else ``auto``.

    With a name, ``backbone.yaml`` is (re)written with every argument; if a required argument
    has no known option, the result lists it in ``missing`` and model.py is left as it was. With
    a file, its values are used as they are. Then the backbone is built and measured at the
    workspace's input size, the consumers of its features are adapted (see
    :mod:`otxlike.configedit.adapters`), the new model is built and run once, and only then are
    the files replaced (previous versions go to ``.backup/<time>/``).

    Raises:
        OtxlikeError: For an unknown backbone, a malformed or incomplete backbone.yaml, a backbone
            that fails to build or run, a model that cannot be adapted, or explicit weights that
            cannot be loaded. Nothing is written then.
    """
    from otxlike.catalog.lookup import get_backbone, provider
    from otxlike.catalog.values import default_values
    from otxlike.configedit.source import ConfigSource, add_custom_imports

    ws.load_custom_modules()  # custom.<name> backbones of the workspace
    scope, input_size, model = ws.model_context()
    is_file = is_yaml_target(target)
    if is_file:
        spec, values, choice = read_backbone_yaml(user_file(ws, target))
        missing = tuple(a.name for a in spec.required if values.get(a.name) is None)
        if missing:
            raise OtxlikeError(
                f"{target}: required argument {', '.join(missing)} of {spec.name} is still empty",
                f"fill it in (see {spec.source}) and run again",
            )
    else:
        spec = get_backbone(target)
        values, missing = default_values(spec, ws.template.backbone_defaults, input_size)
        values.pop(WEIGHTS_KEY, None)  # torchvision builders' own weights argument: otxlike's choice below
        choice = "auto"
        if missing:
            done = commit(ws, [(ws.backbone_yaml, backbone_yaml_text(spec, values, missing, weights or choice))],
                          "backbone.yaml", {"backbone": spec.name, "missing": list(missing)})
            return SwapResult(spec, values, missing, files=done.files)
    choice = weights or choice

    lib = provider(spec.library)
    plan = plan_backbone(lib, spec, values, model, old_strides(model, scope, input_size), scope, input_size,
                         keep=ws.template.backbone_defaults)
    backbone_cfg, values, shapes, edits = plan.cfg, plan.values, plan.shapes, plan.edits

    init = _weights_init(lib, spec, values, choice, backbone_cfg, scope)
    if init is not None:
        backbone_cfg["init_cfg"] = init
    source = ConfigSource(ws.model_py.read_text(encoding="utf-8"))
    source.replace(("model", "backbone"), backbone_cfg)
    for consumer, args in edits.items():
        for key, value in args.items():
            source.set_key(("model", *consumer.split(".")), key, value)
    add_custom_imports(source, lib.custom_imports(spec))  # user code: mmengine's custom_imports
    writes = [] if is_file else [(ws.backbone_yaml, backbone_yaml_text(spec, values, (), choice))]
    writes.append((ws.model_py, source.result()))
    done = commit(ws, writes, "backbone", {"backbone": spec.name, "channels": list(shapes.channels),
                                           "weights": init["checkpoint"] if init else None},
                  input_size=input_size, subject="backbone", backbone=spec.name)
    return SwapResult(spec, values, (), shapes, edits, done.files, done.backup, init)


def set_weights(ws: Workspace, weights: str):
    """Change only where model.py's current backbone starts from (its ``init_cfg``).

    Args:
        ws: The workspace.
        weights: ``none`` (random initialisation) or a checkpoint path / URL / mmengine name,
            loaded now (a whole otxlike model's checkpoint gives its ``backbone.`` part).

    Returns:
        The :class:`~otxlike.configedit.commit.Committed` files and backup.

    Raises:
        OtxlikeError: ``auto`` (the published weights depend on the backbone: name it with
            ``--backbone``), or weights that cannot be loaded. Nothing is written then.
    """
    from otxlike.configedit.source import ConfigSource
    from otxlike.engine.weights import explicit

    if weights == "auto":
        raise OtxlikeError("--weights auto needs the backbone it looks weights up for",
                           "give --backbone NAME too, or --weights PATH|URL|none")
    scope, input_size, model = ws.model_context()
    if weights == "none":
        init = None
    else:
        from mmengine.registry import MODELS, DefaultScope

        with DefaultScope.overwrite_default_scope(scope):
            init = explicit(weights, MODELS.build(dict(model["backbone"])))
    source = ConfigSource(ws.model_py.read_text(encoding="utf-8"))
    source.set_key(("model", "backbone"), "init_cfg", init)
    return commit(ws, [(ws.model_py, source.result())], "weights", {"weights": init["checkpoint"] if init else None},
                  input_size=input_size, subject="backbone")
