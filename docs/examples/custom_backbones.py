"""custom_backbones.py: SqueezeNet as an otxlike backbone (copy into a workspace).

torchvision's SqueezeNet is a flat ``features`` Sequential; SequentialBackbone.from_layers cuts
it into stages where the resolution drops, and reports each stage's channels and stride.
"""
import torchvision

import otxlike


@otxlike.register_backbone(["squeezenet1_0", "squeezenet1_1"])
def get_backbone(model_name, pretrained=None, **kwargs):
    return otxlike.SequentialBackbone.from_layers(getattr(torchvision.models, model_name)(weights=pretrained, **kwargs).features)
