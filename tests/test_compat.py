"""The compatibility matrix: sampled end-to-end checks agree with the shipped matrix, and find
filters by it."""

import json
import os
import subprocess
import sys

import pytest

from otxlike.compat.matrix import load_matrix, task_status
from otxlike.compat.verify import verify

#: A sample of the matrix re-checked in every test run: passes and failures, four libraries/tasks.
SAMPLE = [
    ("torchvision.resnet18", "classification"),
    ("mmdet.ResNet", "detection"),
    ("mmdet.HRNet", "detection"),  # required 'extra' has no default: needs input
    ("mmseg.MobileNetV3", "segmentation"),
]


def _shipped(task):
    """Names that passed and failed ``task`` in the shipped matrix."""
    matrix = load_matrix()
    entries = {n: e["tasks"][task] for n, e in matrix["backbones"].items() if task in e["tasks"]}
    return ([n for n, v in entries.items() if v["ok"]], [n for n, v in entries.items() if not v["ok"]])


def test_shipped_matrix_covers_every_task_of_the_first_libraries():
    from otxlike.tasks import TASKS

    for task in TASKS:
        passed, failed = _shipped(task)
        libraries = {n.split(".")[0] for n in passed}
        assert {"mmdet", "torchvision"} <= libraries, task
        assert all(task_status(n, task) for n in failed)  # every failure has a reason


@pytest.mark.slow
@pytest.mark.parametrize("backbone,task", SAMPLE)
def test_sampled_pair_agrees_with_the_shipped_matrix(backbone, task, tmp_path):
    shipped = task_status(backbone, task)
    assert shipped is not None, f"{backbone} x {task} is missing from otxlike/compat/compat.json"
    verdict = verify(backbone, task, tmp_path)
    assert verdict.ok == (shipped == "pass"), verdict.reason
    if not verdict.ok:
        assert shipped.split(":")[0] == verdict.reason.split(":")[0]  # failed at the same step
    assert not (tmp_path / "workspaces" / f"{task}-{backbone}").exists()  # cleaned up


def test_find_task_lists_only_what_passed_and_all_shows_the_reasons(cli):
    passed, failed = _shipped("detection")
    mmdet_passed = [n for n in passed if n.startswith("mmdet.")]
    mmdet_failed = [n for n in failed if n.startswith("mmdet.")]
    doc = json.loads(cli("find", "--backbone", "mmdet", "--task", "detection", "--verified", "--json").output)
    assert doc["task"] == "detection"
    assert sorted(b["name"] for b in doc["backbones"]) == sorted(mmdet_passed)
    assert all("detection" in b["tasks"] and b["tier"] == "verified" for b in doc["backbones"])

    table = cli("find", "--backbone", "mmdet", "--task", "detection", "--all")
    assert table.exit_code == 0, table.output
    for name in mmdet_failed:
        assert name in table.output
    assert "FAIL: " in table.output and f"{len(mmdet_passed)} of" not in table.output


def test_warm_find_task_imports_no_library(cli):
    assert cli("find", "--backbone", "mmdet", "--task", "detection").exit_code == 0  # fills the index
    code = ("import sys; from typer.testing import CliRunner; from otxlike.cli.app import app;"
            "r = CliRunner().invoke(app, ['find', '--backbone', 'mmdet', '--task', 'detection']);"
            "print(r.exit_code, 'mmdet.ResNet ' in r.output,"
            " [m for m in ('torch', 'mmdet', 'mmengine') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), check=True)
    assert out.stdout.strip() == "0 True []"


def test_find_task_without_a_library_lists_every_library(cli):
    """docs/compatibility.md: `otxlike find --task TASK` lists the backbones verified for it or that fit it."""
    doc = json.loads(cli("find", "--task", "detection", "--json").output)
    assert "templates" not in doc and doc["task"] == "detection"
    libraries = {b["library"] for b in doc["backbones"]}
    assert {"mmdet", "mmseg", "torchvision"} <= libraries
    assert all(("detection" in b["tasks"]) if b["tier"] == "verified" else
               (b["tier"] == "fits" and "detection" in b["fits"]) for b in doc["backbones"])
