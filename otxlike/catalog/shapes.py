"""Measure a backbone's output channels and strides with one tiny forward pass."""

from __future__ import annotations

from dataclasses import dataclass

from otxlike.errors import OtxlikeError
from otxlike.models.features import stride_of


@dataclass(frozen=True)
class FeatureShapes:
    """Channels and strides of a backbone's outputs, in output order.

    Attributes:
        channels: ``C_i`` of each output (N, C_i, H_i, W_i).
        strides: ``H / H_i`` of each output in pixels of the input, rounded to a power of two.
    """

    channels: tuple[int, ...]
    strides: tuple[int, ...]


def infer_feature_shapes(backbone_cfg: dict, scope: str, input_size: int) -> FeatureShapes:
    """Build ``backbone_cfg`` and run a (2, 3, input_size, input_size) zero batch through it.

    The forward runs in eval mode under ``torch.no_grad()`` on the CPU; at the training input
    size it also proves the backbone works at that resolution (a stride-64 network on 32x32
    images fails here, not in the middle of training).

    Args:
        backbone_cfg: An mmengine model config dict, e.g. ``{'type': 'mmdet.RegNet', 'arch': ...}``.
        scope: Default scope to resolve unscoped types in (``mmpretrain``, ``mmdet``, ``mmseg``).
        input_size: Side of the square probe input in pixels.

    Returns:
        The :class:`FeatureShapes` of the backbone's outputs.

    Raises:
        OtxlikeError: If the backbone cannot be built with these arguments, fails on the probe,
            or returns something other than 4-D feature maps.
    """
    return measure_module(build_backbone(backbone_cfg, scope), backbone_cfg.get("type"), input_size)


def build_backbone(backbone_cfg: dict, scope: str):
    """The ``nn.Module`` of ``backbone_cfg`` built through mmengine's ``MODELS`` in ``scope``.

    Raises:
        OtxlikeError: If it cannot be built with these arguments.
    """
    from mmengine.registry import MODELS, DefaultScope

    try:
        with DefaultScope.overwrite_default_scope(scope):
            return MODELS.build(dict(backbone_cfg))
    except OtxlikeError:
        raise
    except Exception as exc:
        raise OtxlikeError(
            f"could not build backbone {backbone_cfg.get('type')}: {type(exc).__name__}: {exc}",
            "check its arguments in backbone.yaml",
        ) from exc


def measure_module(module, name: str, input_size: int) -> FeatureShapes:
    """Channels and strides of a built backbone from a (2, 3, input_size, input_size) zero batch
    (eval mode, ``torch.no_grad()``, CPU); ``name`` is its type, for the messages.

    Raises:
        OtxlikeError: If it fails on the probe or returns something other than 4-D feature maps.
    """
    import torch

    module.eval()
    try:
        with torch.no_grad():
            outs = module(torch.zeros(2, 3, input_size, input_size))
    except Exception as exc:
        raise OtxlikeError(
            f"backbone {name} fails on a {input_size}x{input_size} input: {type(exc).__name__}: {exc}",
            "pick another backbone or a larger input_size in data_pipeline.py",
        ) from exc
    outs = (outs,) if isinstance(outs, torch.Tensor) else tuple(outs)
    if not outs or any(not isinstance(o, torch.Tensor) or o.dim() != 4 for o in outs):
        raise OtxlikeError(f"backbone {name} does not return 4-D feature maps (N, C, H, W)")
    return FeatureShapes(
        channels=tuple(int(o.shape[1]) for o in outs),
        strides=tuple(stride_of(input_size, int(o.shape[-1])) for o in outs),
    )
