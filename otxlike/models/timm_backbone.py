"""timm models as multi-scale backbones for mmengine configs.

``TimmBackbone`` is registered as ``otxlike.TimmBackbone``. It builds
``timm.create_model(model_name, features_only=True)``, timm's own feature-extraction mode (see
``timm/models/_features.py``), whose ``feature_info`` gives each level's channels and stride.
"""

from __future__ import annotations

import torch
from mmengine.model import BaseModule

from otxlike.errors import OtxlikeError
from otxlike.registry import MODELS


@MODELS.register_module()
class TimmBackbone(BaseModule):
    """A timm model returning its feature levels.

    Args:
        model_name: A name from ``timm.list_models()``, e.g. ``resnet18``.
        pretrained: Download timm's pretrained weights (fails offline with an
            :class:`OtxlikeError`); a local file goes in ``checkpoint_path`` instead.
        out_indices: Which feature levels to return (indices into the model's
            ``feature_info``, stride 2 first for most CNNs); all levels when None.
        init_cfg: mmengine init config; None keeps timm's own initialisation.
        **kwargs: Passed to ``timm.create_model`` (e.g. ``img_size`` for ViTs, ``drop_path_rate``).

    Attributes:
        out_channels: C_i of each returned level, from timm's ``feature_info.channels()``.
        strides: s_i of each returned level in pixels, from ``feature_info.reduction()``
            (declared by timm, no forward pass).

    Shapes:
        ``forward(x)``: x is (N, 3, H, W); returns a tuple with one (N, C_i, H / s_i, W / s_i)
        tensor per selected level, in increasing stride ``s_i``.

    Raises:
        OtxlikeError: If the name is unknown, the model has no ``features_only`` mode, or the
            weights cannot be loaded.
    """

    def __init__(self, model_name: str, pretrained: bool = False, out_indices=None, init_cfg=None, **kwargs) -> None:
        super().__init__(init_cfg=init_cfg)
        import timm

        if not timm.is_model(model_name):
            raise OtxlikeError(f"timm has no model '{model_name}'", "see 'otxlike find --backbone timm'")
        if out_indices is not None:
            kwargs["out_indices"] = tuple(out_indices)
        try:
            self.body = timm.create_model(model_name, pretrained=pretrained, features_only=True, **kwargs)
        except (OSError, ValueError) as exc:  # no network: huggingface_hub raises OSError subclasses
            if pretrained:
                raise OtxlikeError(f"could not get timm weights for {model_name} ({exc})",
                                   "set pretrained: false, or give checkpoint_path: a local file") from exc
            raise
        self.model_name = model_name
        self.out_channels = tuple(int(c) for c in self.body.feature_info.channels())
        self.strides = tuple(int(r) for r in self.body.feature_info.reduction())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return the feature maps of ``x`` (N, 3, H, W), in increasing stride."""
        return tuple(self.body(x))
