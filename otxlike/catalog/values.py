"""The argument values ``build --backbone`` writes for a backbone, and its shapes with them."""

from __future__ import annotations

from typing import Any

from otxlike.catalog.introspect import plain
from otxlike.catalog.spec import MISSING, BackboneSpec
from otxlike.errors import OtxlikeError, one_line


def input_size_args(spec: BackboneSpec, input_size: int) -> dict:
    """The arguments that build ``spec`` for square inputs of ``input_size`` pixels, for backbones
    whose position embeddings or windows are sized at construction: a declared ``img_size``
    (mmseg BEiT / MAE, mmpretrain ViTs: 224 by default), timm models whose ``pretrained_cfg``
    says ``fixed_input_size`` (``img_size``); mmpretrain's windowed transformers get
    ``pad_small_map`` True, so that a map smaller than the window (4 x 4 at stride 32 of a
    128-pixel input, against Swin's 7) is padded to it, the setting its docstring gives for
    detection and segmentation (``mmpretrain/models/backbones/swin_transformer.py``). Empty for
    the rest."""
    out: dict = {}
    if spec.arg("pad_small_map") is not None:  # mmpretrain Swin, SwinV2, DaViT
        out["pad_small_map"] = True
    arg = spec.arg("img_size")
    if arg is not None and not arg.required and isinstance(arg.default, (int, tuple, list)):
        # a (height, width) default stays a pair: TinyViT indexes it (mmpretrain/models/backbones/tinyvit.py)
        out["img_size"] = (input_size, input_size) if isinstance(arg.default, (tuple, list)) else input_size
    elif spec.library == "timm":
        import timm

        cfg = timm.models.get_pretrained_cfg(spec.short_name)
        if cfg is not None and cfg.fixed_input_size:
            out["img_size"] = input_size
    return out  # torchvision's vit_* get nothing: their only 4-D map is the patch embedding, not a backbone


def feature_map_args(spec: BackboneSpec) -> dict:
    """The arguments that make ``spec`` return (N, C, H, W) maps, which every template's neck or
    head reads, instead of pooled (N, C) vectors or tokens: mmpretrain's ``out_type`` (its
    VisionTransformer family, XCiT: ``'featmap'``, the patch tokens as a map; the default
    ``'cls_token'`` or ``'avg_featmap'`` is a vector, ``OUT_TYPES`` in
    ``mmpretrain/models/backbones/vision_transformer.py``) and ``gap_before_final_norm`` (ConvNeXt,
    EdgeNeXt, HorNet: False, the map before the pooling). Empty for the rest."""
    out: dict = {}
    if spec.library == "mmpretrain" and spec.arg("out_type") is not None:
        out["out_type"] = "featmap"
    if spec.arg("gap_before_final_norm") is not None:
        out["gap_before_final_norm"] = False
    return out


def default_values(spec: BackboneSpec, template_defaults: dict | None = None,
                   input_size: int | None = None) -> tuple[dict, tuple[str, ...]]:
    """Argument values for a fresh ``backbone.yaml``.

    Every argument whose default is plain data is written; a required argument takes its first
    option (its first preset, with the other arguments the preset's config gives the backbone,
    :mod:`otxlike.catalog.presets`); a ``pretrained=True`` default is
    written False (the class would download weights when built); backbones that can return
    either vectors or maps return maps (:func:`feature_map_args`); with ``input_size``, backbones
    built for one image size get it (:func:`input_size_args`); the template's
    ``backbone_defaults`` override arguments the backbone takes.

    Returns:
        ``(values, missing)``: values by name, and required arguments without any known option.
    """
    from otxlike.catalog.presets import presets_of

    values: dict[str, Any] = {}
    missing = []
    companions: dict[str, Any] = {}
    for arg in spec.args:
        if arg.required:
            values[arg.name] = arg.options[0] if arg.options else None
            if not arg.options:
                missing.append(arg.name)
            presets = presets_of(spec, arg.name)
            if presets and presets[0]["name"] == values[arg.name]:
                companions.update(presets[0].get("with") or {})
        else:
            value = plain(arg.default)
            if value is not MISSING:
                values[arg.name] = value
    values.update(companions)
    if values.get("pretrained") is True:  # mmseg's TIMMBackbone: it would download while being built;
        values["pretrained"] = False         # weights come through init_cfg / --weights instead
    values.update(feature_map_args(spec))
    if input_size is not None:
        values.update(input_size_args(spec, input_size))
    for key, value in (template_defaults or {}).items():
        if spec.arg(key) is not None:
            values[key] = value
    return values, tuple(missing)


def model_values(spec: BackboneSpec, values: dict, keep=()) -> dict:
    """The values that go into model.py: required ones, those that differ from the default, and
    those named in ``keep`` (the template's ``backbone_defaults``, which model.py's
    ``from_scratch`` may switch, so they must be there to be found). Preset names of structured
    arguments (``extra: hrnetv2p-w18``) become their values (:mod:`otxlike.catalog.presets`)."""
    from otxlike.catalog.presets import resolve

    values = resolve(spec, values)
    out = {}
    for key, value in values.items():
        arg = spec.arg(key)
        if arg is None or arg.required or key in keep or plain(arg.default) != value:
            out[key] = tuple(value) if arg is not None and isinstance(arg.default, tuple) and isinstance(value, list) else value
    return out


def default_shapes(spec: BackboneSpec, input_size: int, backbone_defaults: dict | None = None):
    """Output shapes of ``spec`` built with the values ``build --backbone`` would write, from a
    (2, 3, input_size, input_size) probe in the provider's scope.

    Returns:
        ``(shapes, None)``, or ``(None, one-line reason)`` when it needs input or fails.
    """
    from otxlike.catalog.lookup import provider
    from otxlike.catalog.shapes import infer_feature_shapes

    values, missing = default_values(spec, backbone_defaults, input_size)
    if missing:
        return None, f"needs input: {', '.join(missing)}"
    try:
        lib = provider(spec.library)
        return infer_feature_shapes(lib.model_cfg(spec, model_values(spec, values)), lib.scope, input_size), None
    except OtxlikeError as exc:
        return None, one_line(exc, 200)
