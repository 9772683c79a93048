"""One table of neck/head kinds: how each consumer of backbone features takes its channels.

When a backbone is swapped, the first module of the model that reads the backbone's outputs (the
neck, or the head(s) when there is no neck) gets its ``in_channels`` from the backbone's measured
:class:`~otxlike.catalog.shapes.FeatureShapes`. Modules that only pool (mmpretrain's
``GlobalAveragePooling``) pass the features through, and the next module adapts instead. Every
kind goes through :data:`KINDS`; a type missing from it is reported, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from otxlike.catalog.shapes import FeatureShapes
from otxlike.errors import OtxlikeError

Adapter = Callable[[FeatureShapes], dict]


def _passthrough(shapes: FeatureShapes) -> dict:
    """Pools each map and keeps its channels: nothing to set, the next module adapts."""
    return {}


def _last_stage(shapes: FeatureShapes) -> dict:
    """Reads only the last (deepest) map: ``in_channels`` is an int (mmpretrain cls heads)."""
    return {"in_channels": shapes.channels[-1]}


def _all_stages(shapes: FeatureShapes) -> dict:
    """Reads every map (FPN-like necks): ``in_channels`` is the list of stage channels."""
    return {"in_channels": list(shapes.channels)}


def _decode_all(shapes: FeatureShapes) -> dict:
    """mmseg decode heads reading every map: channels plus ``in_index`` of each."""
    return {"in_channels": list(shapes.channels), "in_index": list(range(len(shapes.channels)))}


def _decode_last(shapes: FeatureShapes) -> dict:
    """mmseg decode heads reading one map: the last one's channels, ``in_index=-1``."""
    return {"in_channels": shapes.channels[-1], "in_index": -1}


PASSTHROUGH = "passthrough"
MULTI_SCALE = ("all-stages", "decode-all")

#: type name -> (kind, adapter). Sources of the rules: mmpretrain/models/necks/gap.py,
#: mmpretrain/models/heads/linear_head.py, mmdet/models/necks/fpn.py, mmseg/models/decode_heads.
KINDS: dict[str, tuple[str, Adapter]] = {
    # mmpretrain necks that pool each map
    "GlobalAveragePooling": (PASSTHROUGH, _passthrough),
    "otxlike.GlobalAveragePooling": (PASSTHROUGH, _passthrough),
    "GeneralizedMeanPooling": (PASSTHROUGH, _passthrough),
    # single-input classification heads (they use the last map)
    "LinearClsHead": ("last-stage", _last_stage),
    "StackedLinearClsHead": ("last-stage", _last_stage),
    "MultiLabelLinearClsHead": ("last-stage", _last_stage),
    "ArcFaceClsHead": ("last-stage", _last_stage),
    # necks that take every stage
    "FPN": ("all-stages", _all_stages),
    "PAFPN": ("all-stages", _all_stages),
    "ChannelMapper": ("all-stages", _all_stages),
    "NASFPN": ("all-stages", _all_stages),
    "mmdet.FPN": ("all-stages", _all_stages),
    # mmseg decode heads
    "FPNHead": ("decode-all", _decode_all),
    "UPerHead": ("decode-all", _decode_all),
    "FCNHead": ("decode-last", _decode_last),
    "ASPPHead": ("decode-last", _decode_last),
    "PSPHead": ("decode-last", _decode_last),
}

#: Scope prefixes of the OpenMMLab libraries: a scoped type names the same class as the bare name.
MM_SCOPES = ("mmpretrain.", "mmdet.", "mmseg.")

#: Where, in a model dict, the modules that may read the backbone are, in reading order.
CONSUMER_KEYS = ("neck", "decode_head", "auxiliary_head", "head", "bbox_head")


def first_consumer(model: dict) -> tuple[str, str] | None:
    """``(key, kind)`` of the first module reading the backbone's maps, or None.

    Raises:
        OtxlikeError: If a consumer's type is not in :data:`KINDS`.
    """
    for key in CONSUMER_KEYS:
        cfg = model.get(key)
        if isinstance(cfg, dict):
            kind = _rule(key, cfg)[0]
            if kind != PASSTHROUGH:
                return key, kind
    return None


def _rule(key: str, cfg: dict, channels: tuple[int, ...] = ()) -> tuple[str, Adapter]:
    """The (kind, adapter) of the consumer at ``model.<key>``; heads registered with
    ``otxlike.register_head`` read the last map by their contract.

    Raises:
        OtxlikeError: If otxlike has no rule for its type (``channels`` go into the hint).
    """
    type_name = cfg.get("type")
    if type_name in KINDS:
        return KINDS[type_name]
    short = type_name.split(".", 1)[1] if isinstance(type_name, str) and type_name.startswith(MM_SCOPES) else None
    if short in KINDS:  # 'mmpretrain.LinearClsHead' is the library's LinearClsHead
        return KINDS[short]
    if key == "head" and isinstance(type_name, str) and type_name.startswith("otxlike."):
        from otxlike.models.custom import head_module

        if head_module(type_name.split(".", 1)[1]) is not None:
            return "last-stage", _last_stage
    raise OtxlikeError(
        f"cannot adapt model.{key} of type '{type_name}' to the new backbone: otxlike has no rule for it",
        f"set its in_channels{' to ' + str(list(channels)) if channels else ''} by hand, or add the type to "
        "otxlike/configedit/adapters.py",
    )


@dataclass(frozen=True)
class StagePlan:
    """Which outputs of a new backbone to keep so the model sees the strides it was built for.

    Attributes:
        keep: Positions of the backbone's outputs to keep, or None to keep them all.
        edits: Extra edits by dotted path under ``model``, e.g. ``{'neck': {'start_level': 0}}``
            or ``{'rpn_head.anchor_generator': {'strides': [8, 16, 32, 64, 128]}}``.
    """

    keep: tuple[int, ...] | None = None
    edits: dict = field(default_factory=dict)


def plan_stages(model: dict, old_strides: tuple[int, ...] | None, new_strides: tuple[int, ...]) -> StagePlan:
    """Match a new backbone's output strides to the ones the model's neck/heads were built for.

    A multi-scale consumer (FPN-like neck, mmseg decode head) is followed by modules that assume
    the strides of the old backbone (anchor strides, RoI ``featmap_strides``, ``feature_strides``).
    The new backbone must give every stride the consumer uses (for an FPN with ``start_level``
    s: the old strides from index s on), except the largest ones an FPN makes itself
    (:func:`_fpn_fills`), or when an FPN reads higher strides and the model's strides move
    along (:func:`_shift`); outputs at other strides are dropped, and an FPN whose unused
    leading stride is missing gets a smaller ``start_level``. Of several outputs at one stride,
    the last is kept: the deepest map at that resolution, as feature pyramids take it (mmdet's
    ``MobileNetV2`` defaults to ``out_indices=(1, 2, 4, 7)``, ``mmdet/models/backbones/mobilenet_v2.py``,
    where 3 and 4 are both at stride 16 and 5, 6, 7 at 32; timm's ``features_only`` levels are
    the last block before each reduction, ``extract_features`` in
    ``timm/models/_efficientnet_builder.py``). Single-input consumers (classification heads) take
    the last map and need no matching.

    Args:
        model: The ``model`` dict of the workspace config.
        old_strides: Output strides of the backbone being replaced (None if unknown).
        new_strides: Output strides of the new backbone with its current ``out_indices``.

    Raises:
        OtxlikeError: If the new backbone lacks a stride the model uses.
    """
    consumer = first_consumer(model)
    if consumer is None or consumer[1] not in MULTI_SCALE or old_strides is None or new_strides == old_strides:
        return StagePlan()
    key, kind = consumer
    start = int(model[key].get("start_level", 0)) if kind == "all-stages" else 0
    used = old_strides[start:]
    lacking = [s for s in used if s not in new_strides]
    if lacking and _fpn_fills(model[key], used, lacking):
        lacking = []
    shifted = _shift(model, key, used, new_strides) if lacking else None
    if shifted is not None:
        return shifted
    if lacking:
        raise OtxlikeError(
            f"the new backbone has no output at stride {', '.join(map(str, lacking))}, which model.{key} uses "
            f"(the model expects strides {list(old_strides)}, the backbone gives {list(new_strides)})",
            "pick a backbone with those strides, or set its out_indices / strides in backbone.yaml",
        )
    wanted = [s for s in old_strides if s in new_strides]
    last = {s: i for i, s in enumerate(new_strides)}  # stride -> position of its last output
    keep = tuple(last[s] for s in wanted)
    dropped_leading = sum(1 for s in old_strides[:start] if s not in new_strides)
    edits = {key: {"start_level": start - dropped_leading}} if kind == "all-stages" and dropped_leading else {}
    return StagePlan(None if keep == tuple(range(len(new_strides))) else keep, edits)


def _is_fpn(neck: dict) -> bool:
    """An mmdet/mmseg ``FPN`` with ``num_outs``: it adds stride-2 extra levels up to that count."""
    return neck.get("type") in ("FPN", "mmdet.FPN", "mmseg.FPN") and "num_outs" in neck


def _doubling(strides) -> bool:
    """Each stride twice the one before (the spacing an FPN's top-down path and extra levels have)."""
    return all(b == 2 * a for a, b in zip(strides, strides[1:]))


def _fpn_fills(neck: dict, used: tuple[int, ...], lacking: list[int]) -> bool:
    """True if an FPN neck makes the ``lacking`` strides itself from the ones present.

    mmdet's and mmseg's ``FPN`` add ``num_outs - len(in_channels) + start_level`` extra levels on
    top of the last input, each at twice the stride of the one below (a stride-2 conv with
    ``add_extra_convs``, else a stride-2 max pool; ``mmdet/models/necks/fpn.py``). So when the
    backbone lacks only the largest strides the FPN reads, and the strides the FPN reads double
    from level to level, the FPN's outputs keep the strides the heads were built for.
    At least two backbone levels must remain.
    """
    present = len(used) - len(lacking)
    return _is_fpn(neck) and present >= 2 and tuple(lacking) == tuple(used[present:]) and _doubling(used)


#: Keys holding the strides of the FPN's outputs further down the model: anchor generators
#: (mmdet ``AnchorGenerator.strides``), RoI extractors (``featmap_strides``), mmseg's ``FPNHead``
#: (``feature_strides``).
STRIDE_KEYS = ("strides", "featmap_strides", "feature_strides")


def _stride_lists(node, path: tuple[str, ...] = ()):
    """``(path, key, list)`` of every stride list under ``node`` (a model dict)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in STRIDE_KEYS and isinstance(v, (list, tuple)) and v and all(isinstance(i, int) for i in v):
                yield path, k, list(v)
            else:
                yield from _stride_lists(v, path + (k,))


def _shift(model: dict, key: str, used: tuple[int, ...], new_strides: tuple[int, ...]) -> StagePlan | None:
    """Let an FPN read a backbone whose strides start higher, moving the model's strides along.

    An FPN (``start_level`` 0) whose first stride is missing can read the backbone's strides
    above it when they double from level to level (at least two; the FPN's extra levels make up
    the rest, see :func:`_fpn_fills`). Of several outputs at one stride the last is read, as in
    :func:`plan_stages`: timm's ``sequencer2d_*`` give strides 8, 16, 16, and the FPN reads the
    first and the third; mmseg's ``BiSeNetV1`` gives ``x_fuse`` and ``x_context8`` at 8, then
    ``x_context16`` (``mmseg/models/backbones/bisenetv1.py``), and the FPN reads the last two
    (``out_indices: [0, 2]`` in backbone.yaml reads the fused map instead). The FPN's outputs
    then sit at ``f`` times the old strides,
    ``f = new_first / old_first``, and every stride list of the model further down (anchor
    strides, RoI ``featmap_strides``, mmseg ``feature_strides``) is multiplied by ``f``, so they
    stay true. (mmdet's RoI extractors and anchor generators take any strides:
    ``mmdet/models/roi_heads/roi_extractors/single_level_roi_extractor.py``,
    ``mmdet/models/task_modules/prior_generators/anchor_generator.py``.)

    Returns:
        The plan (outputs to keep and the stride edits), or None when the rule does not apply.
    """
    neck = model.get(key, {})
    if key != "neck" or not _is_fpn(neck) or int(neck.get("start_level", 0)) != 0 or used[0] in new_strides:
        return None
    last: dict[int, int] = {}  # stride above the missing one -> position of its last output
    for i, s in enumerate(new_strides):
        if s > used[0]:
            last[s] = i
    run = list(last.values())[: len(used)]
    strides = [new_strides[i] for i in run]
    if len(run) < 2 or run != sorted(run) or not _doubling(strides):
        return None
    factor = strides[0] // used[0]
    edits: dict[str, dict] = {}
    for path, name, values in _stride_lists({k: v for k, v in model.items() if k not in ("backbone", key)}):
        edits.setdefault(".".join(path), {})[name] = [v * factor for v in values]
    return StagePlan(None if tuple(run) == tuple(range(len(new_strides))) else tuple(run), edits)


def plan_channel_edits(model: dict, shapes: FeatureShapes) -> dict[str, dict]:
    """Which keys to set on which consumer of the backbone.

    Args:
        model: The ``model`` dict of the workspace config (as loaded by mmengine).
        shapes: The new backbone's output shapes.

    Returns:
        ``{consumer_key: {arg: value}}``, e.g. ``{'head': {'in_channels': 384}}``.

    Raises:
        OtxlikeError: If a consumer's type is not in :data:`KINDS` (nothing is changed).
    """
    plan: dict[str, dict] = {}
    for key in CONSUMER_KEYS:
        cfg = model.get(key)
        if not isinstance(cfg, dict):
            continue
        kind, adapter = _rule(key, cfg, shapes.channels)
        if kind == PASSTHROUGH:
            continue  # it only pools: the next module reads the maps
        plan[key] = adapter(shapes)
        if key != "decode_head":  # mmseg's auxiliary_head reads the backbone too
            break
    return plan
