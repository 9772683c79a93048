"""The feature contract every backbone wrapper keeps, and how strides are measured.

A backbone returns a tuple of (N, C_i, H / s_i, W / s_i) maps in increasing stride ``s_i`` and
declares ``out_channels`` (the C_i) and ``strides`` (the s_i, pixels), as timm's ``feature_info``
(``timm/models/_features.py``) and detectron2's ``Backbone.output_shape()`` do.
"""

from __future__ import annotations

import math

PROBE_SIZE = 128
"""Side in pixels of the zero image used to find and measure stages without a declared contract:
stride 32 still gives 4x4 maps (used by the torchvision wrapper, ``SequentialBackbone`` and
``find``'s detail view)."""


def stride_of(input_size: int, width: int) -> int:
    """The stride in pixels of a map ``width`` wide from an ``input_size``-wide input, rounded to
    the nearest power of two (unpadded convolutions and ceil-mode pooling give 128 -> 63 -> 31 -> 15
    -> 7 in AlexNet and SqueezeNet)."""
    return 2 ** max(0, round(math.log2(input_size / max(1, width))))
