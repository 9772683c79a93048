import pytest
import torch
import torchvision

from otxlike.errors import OtxlikeError
from otxlike.models.torchvision_backbone import TorchvisionBackbone, find_stage_nodes


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


def test_missing_local_weights_file():
    with pytest.raises(OtxlikeError, match=r"weights file /nonexistent/resnet18.pth does not exist"):
        TorchvisionBackbone("resnet18", weights="/nonexistent/resnet18.pth")


def test_local_weights_of_another_model_are_refused(tmp_path):
    path = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), path)
    with pytest.raises(OtxlikeError, match="does not fit torchvision.resnet18"):
        TorchvisionBackbone("resnet18", weights=str(path))


def test_named_weights_come_from_the_torch_hub_cache(tmp_path, monkeypatch):
    """``weights: DEFAULT`` goes through torchvision's own download code, which reads the hub cache
    first: a file put there (named as in the weights' URL) is what the backbone starts from."""
    from torchvision.models import ResNet18_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = torchvision.models.resnet18()
    cached = tmp_path / "hub" / "checkpoints" / ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    module = TorchvisionBackbone("resnet18", weights="DEFAULT")
    loaded = dict(module.body.named_parameters())
    assert torch.equal(loaded["layer4.1.conv2.weight"], reference.layer4[1].conv2.weight)
    assert torch.equal(loaded["conv1.weight"], reference.conv1.weight)
