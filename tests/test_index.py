"""The on-disk backbone index used by `otxlike find`."""

import json
import os
import subprocess
import sys

from otxlike.backbones.catalog import list_backbones, provider
from otxlike.backbones.index import Repr, index_path, indexed_backbones


def test_index_round_trips_the_live_specs():
    live = {s.name: s for s in list_backbones("mmdet")}
    indexed_backbones(provider("mmdet"))
    again, hit_again = indexed_backbones(provider("mmdet"))
    assert hit_again
    assert [s.name for s in again] == list(live)
    resnet = next(s for s in again if s.name == "mmdet.ResNet")
    live_resnet = live["mmdet.ResNet"]
    assert [(a.name, a.required, a.options) for a in resnet.args] == \
           [(a.name, a.required, a.options) for a in live_resnet.args]
    assert resnet.arg("norm_cfg").default == {"type": "BN", "requires_grad": True}
    assert resnet.arg("strides").default == [1, 2, 2, 2]  # tuples are stored as lists


def test_non_plain_defaults_keep_their_repr():
    specs, _ = indexed_backbones(provider("torchvision"))
    # torchvision builders default weights to None: plain
    assert next(s for s in specs if s.name == "torchvision.resnet18").arg("weights").default is None
    assert repr(Repr("<class 'X'>")) == "<class 'X'>"


def test_the_key_follows_installed_versions():
    # the library's own distribution is part of the key: a missing one gives another file
    assert index_path("mmdet", "mmdet") != index_path("mmdet", "no-such-distribution")
    assert index_path("mmdet", "mmdet") == index_path("mmdet", "mmdet")


def test_a_corrupt_index_is_rebuilt():
    indexed_backbones(provider("mmseg"))
    path = index_path("mmseg", "mmsegmentation")
    path.write_text("{not json")
    specs, hit = indexed_backbones(provider("mmseg"))
    assert not hit and any(s.name == "mmseg.UNet" for s in specs)
    assert json.loads(path.read_text())["backbones"]


def test_warm_find_imports_no_library():
    indexed_backbones(provider("mmdet"))  # make sure the index exists
    code = (
        "import sys; from typer.testing import CliRunner; from otxlike.cli.main import app;"
        "r = CliRunner().invoke(app, ['find', '--backbone', 'mmdet']);"
        "print(r.exit_code, 'mmdet.RegNet' in r.output, [m for m in ('torch', 'mmdet', 'mmengine') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), check=True)
    assert out.stdout.strip() == "0 True []"
