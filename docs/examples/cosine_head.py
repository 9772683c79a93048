"""cosine_head.py: a cosine-similarity classification head (copy into a workspace).

logits = scale * cos(feature, w_c) for each class c: the features and class weights are
L2-normalised, so classes compete by direction only (Wang et al., "CosFace", CVPR 2018, without
the margin). Follows mmpretrain's ClsHead interface (mmpretrain/models/heads/cls_head.py), so
the loss, accuracy and predict come from there.
"""
import torch
import torch.nn.functional as F
from mmpretrain.models.heads import ClsHead
from torch import nn

import otxlike


@otxlike.register_head("CosineClsHead")
class CosineClsHead(ClsHead):
    """Cosine-similarity classifier on the backbone's last map (pooled by the neck to (N, C)).

    Args:
        num_classes: Number of classes.
        in_channels: C of the pooled feature.
        scale: Multiplier of the cosines (a temperature); 16 keeps softmax from being too flat.
    """

    def __init__(self, num_classes, in_channels, scale=16.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale
        self.weight = nn.Parameter(torch.randn(num_classes, in_channels) * 0.01)

    def forward(self, feats):
        x = self.pre_logits(feats)  # (N, C)
        return self.scale * F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))
