"""Which backbones fit which task's template (find --task)."""

from otxlike.backbones.catalog import get_backbone
from otxlike.configedit.compat import fit_for_task

NAMES = ["mmdet.ResNet", "mmdet.CSPDarknet", "mmdet.HRNet", "torchvision.vit_b_16"]


def _fit(task):
    return fit_for_task([get_backbone(n) for n in NAMES], task)


def test_detection_takes_backbones_whose_used_strides_exist():
    fit = _fit("detection")
    assert fit["mmdet.ResNet"] is None
    assert fit["mmdet.CSPDarknet"] is None  # strides 8/16/32: ATSS's FPN starts at stride 8
    assert fit["mmdet.HRNet"] == "needs input: extra"
    assert "does not run" in fit["torchvision.vit_b_16"]  # demands 224x224 and gives no feature map


def test_instance_segmentation_needs_stride_4():
    fit = _fit("instance-segmentation")
    assert fit["mmdet.ResNet"] is None
    assert "no output at stride 4" in fit["mmdet.CSPDarknet"]


def test_find_task_filters_the_table(cli):
    result = cli("find", "--backbone", "mmdet", "--task", "instance-segmentation")
    assert result.exit_code == 0, result.output
    assert "mmdet.ResNet " in result.output and "mmdet.CSPDarknet" not in result.output
    assert "mmdet.HRNet" not in result.output
    assert "backbones build with their default arguments and fit the instance-segmentation template" in result.output


def test_warm_find_task_imports_no_library(cli):
    import os
    import subprocess
    import sys

    assert cli("find", "--backbone", "mmdet", "--task", "detection").exit_code == 0  # fills the caches
    code = ("import sys; from typer.testing import CliRunner; from otxlike.cli.main import app;"
            "r = CliRunner().invoke(app, ['find', '--backbone', 'mmdet', '--task', 'detection']);"
            "print(r.exit_code, 'mmdet.CSPDarknet' in r.output, 'mmdet.HRNet' in r.output,"
            " [m for m in ('torch', 'mmdet', 'mmengine') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), check=True)
    assert out.stdout.strip() == "0 True False []"
