"""Necks otxlike's templates use, registered as ``otxlike.<Name>``."""

from __future__ import annotations

import torch
from torch import nn

from otxlike.registry import MODELS


@MODELS.register_module()
class GlobalAveragePooling(nn.Module):
    """Average each feature map to a vector: mmpretrain's ``GlobalAveragePooling``
    (``mmpretrain/models/necks/gap.py``) for 2-D maps, also taking a *list* of maps.

    mmpretrain's neck accepts a tuple or a tensor only, while several mmdet/mmseg backbones
    (Swin, PVT, HourglassNet, mmseg's MobileNetV3, ...) return a list; with this neck they work
    as classification backbones too.

    Shapes:
        ``forward(inputs)``: a (N, C, H, W) tensor gives (N, C); a tuple or list of
        (N, C_i, H_i, W_i) maps gives a tuple of (N, C_i).
    """

    def __init__(self) -> None:
        super().__init__()
        self.gap = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, inputs):
        if isinstance(inputs, torch.Tensor):
            return self.gap(inputs).flatten(1)
        if isinstance(inputs, (tuple, list)):
            return tuple(self.gap(x).flatten(1) for x in inputs)
        raise TypeError(f"GlobalAveragePooling takes a tensor or a tuple/list of tensors, not {type(inputs).__name__}")
