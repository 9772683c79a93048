"""One table of neck/head kinds: how each consumer of backbone features takes its channels.

When a backbone is swapped, the first module of the model that reads the backbone's outputs (the
neck, or the head(s) when there is no neck) gets its ``in_channels`` from the backbone's measured
:class:`~otxlike.backbones.shapes.FeatureShapes`. Modules that only pool (mmpretrain's
``GlobalAveragePooling``) pass the features through, and the next module adapts instead. Every
kind goes through :data:`KINDS`; a type missing from it is reported, never guessed.
"""

from __future__ import annotations

from typing import Callable

from otxlike.backbones.shapes import FeatureShapes
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

#: type name -> (kind, adapter). Sources of the rules: mmpretrain/models/necks/gap.py,
#: mmpretrain/models/heads/linear_head.py, mmdet/models/necks/fpn.py, mmseg/models/decode_heads.
KINDS: dict[str, tuple[str, Adapter]] = {
    # mmpretrain necks that pool each map
    "GlobalAveragePooling": (PASSTHROUGH, _passthrough),
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

#: Where, in a model dict, the modules that may read the backbone are, in reading order.
CONSUMER_KEYS = ("neck", "decode_head", "auxiliary_head", "head", "bbox_head")


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
        type_name = cfg.get("type")
        if type_name not in KINDS:
            raise OtxlikeError(
                f"cannot adapt model.{key} of type '{type_name}' to the new backbone: "
                "otxlike has no rule for it",
                f"set its in_channels to {list(shapes.channels)} by hand, or add the type to "
                "otxlike/configedit/adapters.py",
            )
        kind, adapter = KINDS[type_name]
        if kind == PASSTHROUGH:
            continue  # it only pools: the next module reads the maps
        plan[key] = adapter(shapes)
        if key != "decode_head":  # mmseg's auxiliary_head reads the backbone too
            break
    return plan
