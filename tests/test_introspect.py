"""Backbone introspection against the installed mmdet / mmseg / torchvision."""

import pytest

from otxlike.catalog.lookup import get_backbone, list_backbones
from otxlike.errors import OtxlikeError


def test_mmdet_lists_exported_backbones():
    import mmdet.models.backbones as upstream

    names = {s.name for s in list_backbones("mmdet")}
    assert names == {f"mmdet.{n}" for n in upstream.__all__}
    assert len(names) == 20  # DESIGN.md: mmdet 3.3.0 registers 20 backbones


def test_mmseg_skips_registered_helpers():
    names = {s.name for s in list_backbones("mmseg")}
    assert "mmseg.ResNetV1c" in names and "mmseg.UNet" in names
    assert "mmseg.DeconvModule" not in names and "mmseg.InterpConv" not in names


def test_resnet_depth_options_are_arch_settings_keys():
    spec = get_backbone("mmdet.ResNet")
    assert [a.name for a in spec.required] == ["depth"]
    assert spec.required[0].options == (18, 34, 50, 101, 152)


def test_subclass_with_kwargs_inherits_required_depth():
    spec = get_backbone("mmdet.ResNeXt")
    assert [a.name for a in spec.required] == ["depth"]
    assert spec.arg("depth").inherited
    assert spec.arg("groups").default == 1  # its own parameter


def test_parent_args_fixed_by_subclass_are_not_offered():
    # ResNetV1d calls super().__init__(deep_stem=True, avg_down=True, **kwargs)
    spec = get_backbone("mmdet.ResNetV1d")
    assert spec.arg("deep_stem") is None and spec.arg("avg_down") is None
    assert spec.arg("depth").required


def test_regnet_arch_options_and_hrnet_without_options():
    from mmdet.models.backbones import RegNet

    regnet = get_backbone("mmdet.RegNet")
    assert regnet.arg("arch").options == tuple(RegNet.arch_settings)
    from otxlike.catalog.lookup import provider

    declared = next(s for s in provider("mmdet").introspect() if s.name == "mmdet.HRNet")
    assert [a.name for a in declared.required] == ["extra"] and declared.required[0].options == ()
    hrnet = get_backbone("mmdet.HRNet")  # the class declares none: the presets of mmdet's configs
    assert hrnet.required[0].options == ("hrnetv2p-w18", "hrnetv2p-w32", "hrnetv2p-w40")


def test_inherited_arch_table_counts():
    # SSDVGG's depth comes from mmcv's VGG.arch_settings
    assert get_backbone("mmdet.SSDVGG").arg("depth").options == (11, 13, 16, 19)


def test_torchvision_models_have_no_required_args():
    specs = {s.name: s for s in list_backbones("torchvision")}
    assert "torchvision.resnet18" in specs and "torchvision.mobilenet_v3_small" in specs
    assert specs["torchvision.resnet18"].required == ()
    assert specs["torchvision.resnet18"].arg("weights").default is None


def test_unknown_names_suggest_close_ones():
    with pytest.raises(OtxlikeError) as err:
        get_backbone("mmdet.RegNt")
    assert "mmdet.RegNet" in str(err.value)
    with pytest.raises(OtxlikeError, match="known libraries"):
        get_backbone("mmdett.ResNet")
    with pytest.raises(OtxlikeError, match="no library prefix"):
        get_backbone("ResNet")


def test_case_insensitive_lookup():
    assert get_backbone("mmdet.regnet").name == "mmdet.RegNet"
