"""Modules for custom backbones: the ``nn.Sequential`` helper and the mmengine wrapper.

``CustomBackbone`` is registered as ``otxlike.CustomBackbone``; it builds a backbone registered
with :func:`otxlike.register_backbone` (see :mod:`otxlike.models.custom` for the contract).
"""

from __future__ import annotations

import torch
from mmengine.model import BaseModule
from torch import nn

from otxlike.errors import OtxlikeError
from otxlike.models.custom import check_contract, lookup
from otxlike.models.features import PROBE_SIZE, stride_of
from otxlike.registry import MODELS


class SequentialBackbone(nn.Module):
    """A backbone from an ordered list of stages, following the backbone contract.

    Args:
        stages: An ``nn.Sequential`` (or list) of stage modules; stage i's output is feature map i.
        probe_size: Side in pixels of the zero image used once to measure each stage's channels
            and stride (rounded to a power of two).

    Attributes:
        out_channels: C_i of each stage's output.
        strides: s_i of each stage's output, in pixels of the input.

    Shapes:
        ``forward(x)``: x is (N, 3, H, W); returns one (N, C_i, H / s_i, W / s_i) map per stage.
    """

    def __init__(self, stages, probe_size: int = PROBE_SIZE) -> None:
        super().__init__()
        self.stages = stages if isinstance(stages, nn.Sequential) else nn.Sequential(*stages)
        training = self.training
        self.eval()
        with torch.no_grad():
            outs = self.forward(torch.zeros(1, 3, probe_size, probe_size))
        self.train(training)
        self.out_channels = tuple(int(o.shape[1]) for o in outs)
        self.strides = tuple(stride_of(probe_size, int(o.shape[-1])) for o in outs)

    @classmethod
    def from_layers(cls, layers, probe_size: int = PROBE_SIZE) -> "SequentialBackbone":
        """Group a flat sequence of layers (e.g. torchvision's ``model.features``) into stages.

        A stage ends at the last layer before the resolution drops, so each stage returns the
        deepest map at its stride; layers still at stride 1 join the first stage.
        """
        layers = list(layers)
        widths = []
        x = torch.zeros(1, 3, probe_size, probe_size)
        with torch.no_grad():
            for layer in layers:
                was = layer.training
                layer.eval()
                x = layer(x)
                layer.train(was)
                widths.append(int(x.shape[-1]))
        stages, current = [], []
        for i, layer in enumerate(layers):
            current.append(layer)
            ends = i == len(layers) - 1 or widths[i + 1] < widths[i]
            if ends and stride_of(probe_size, widths[i]) > 1:
                stages.append(nn.Sequential(*current))
                current = []
        if current and stages:
            stages[-1] = nn.Sequential(*stages[-1], *current)
        return cls(nn.Sequential(*stages), probe_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The output of every stage for x (N, 3, H, W), in increasing stride."""
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return tuple(outs)


@MODELS.register_module()
class CustomBackbone(BaseModule):
    """A backbone registered with :func:`otxlike.register_backbone`, for mmengine configs.

    Args:
        model_name: The registered name (without ``custom.``).
        out_indices: Which stages to return (indices into the backbone's outputs); all when None.
        init_cfg: mmengine init config; None keeps the module's own initialisation.
        **kwargs: Passed to the builder or class (e.g. ``pretrained``).

    Shapes:
        ``forward(x)``: x is (N, 3, H, W); returns one (N, C_i, H / s_i, W / s_i) map per
        selected stage.

    Raises:
        OtxlikeError: If the name is not registered (its module is missing from
            ``custom_imports``), or the module breaks the contract.
    """

    def __init__(self, model_name: str, out_indices=None, init_cfg=None, **kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        self.body = lookup(model_name).build(**kwargs)
        channels, strides = check_contract(self.body, model_name)
        self.model_name = model_name
        self.out_indices = tuple(range(len(channels))) if out_indices is None else tuple(out_indices)
        self.out_channels = tuple(channels[i] for i in self.out_indices)
        self.strides = tuple(strides[i] for i in self.out_indices)
        self._checked = False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The selected stage maps of x (N, 3, H, W); the first call checks them against
        ``out_channels``."""
        outs = self.body(x)
        outs = (outs,) if isinstance(outs, torch.Tensor) else tuple(outs)
        if not self._checked:
            got = tuple(int(o.shape[1]) if isinstance(o, torch.Tensor) and o.dim() == 4 else -1 for o in outs)
            if got != tuple(check_contract(self.body, self.model_name)[0]):
                raise OtxlikeError(f"custom backbone '{self.model_name}' reports out_channels "
                                   f"{list(self.body.out_channels)} but returns maps with channels {list(got)}",
                                   "fix its out_channels, or return one (N, C, H, W) map per stage")
            self._checked = True
        return tuple(outs[i] for i in self.out_indices)
