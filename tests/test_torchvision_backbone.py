import torch

from otxlike.backbones.torchvision_backbone import TorchvisionBackbone, find_stage_nodes


def test_resnet18_stages_match_torchvision_detection_backbone():
    # torchvision's own detection backbones return layer1..layer4 of a ResNet
    assert find_stage_nodes("resnet18") == ["layer1", "layer2", "layer3", "layer4"]


def test_wrapper_returns_resnet18_feature_maps():
    module = TorchvisionBackbone("resnet18").eval()
    with torch.no_grad():
        outs = module(torch.zeros(2, 3, 64, 64))
    # ResNet-18 (He et al. 2016, table 1): 64/128/256/512 channels at strides 4/8/16/32
    assert [tuple(o.shape) for o in outs] == [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4), (2, 512, 2, 2)]


def test_out_indices_select_stages():
    module = TorchvisionBackbone("mobilenet_v3_small", out_indices=[-1]).eval()
    with torch.no_grad():
        (out,) = module(torch.zeros(1, 3, 64, 64))
    assert out.shape[1] == 576 and out.shape[-1] == 2  # last conv of MobileNetV3-Small, stride 32


def test_offline_weights_give_one_clear_error(monkeypatch):
    import pytest

    from otxlike.errors import OtxlikeError

    with pytest.raises(OtxlikeError, match="weights"):
        TorchvisionBackbone("resnet18", weights="/nonexistent/resnet18.pth")
