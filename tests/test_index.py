"""The on-disk backbone index used by `otxlike find`."""

import json
import os
import subprocess
import sys

import pytest

from otxlike.catalog.index import Repr, index_path, indexed_backbones
from otxlike.catalog.introspect import plain
from otxlike.catalog.lookup import list_backbones, provider
from otxlike.catalog.spec import MISSING


def _expected(arg):
    """What the index must give back for a live argument: plain defaults as YAML data (tuples
    as lists), others as a ``Repr`` of the live default's ``repr``."""
    if arg.required:
        return MISSING
    value = plain(arg.default)
    return Repr(repr(arg.default)) if value is MISSING else value


@pytest.mark.parametrize("library", ["mmdet", "mmpretrain"])
def test_index_round_trips_the_live_specs(library):
    live = list_backbones(library)
    indexed_backbones(provider(library))
    again, hit_again = indexed_backbones(provider(library))
    assert hit_again
    assert [s.name for s in again] == [s.name for s in live]
    for old, new in zip(live, again):
        assert (new.library, new.source, new.accepts_kwargs, new.weights) == \
               (old.library, old.source, old.accepts_kwargs, old.weights)
        assert [(a.name, a.options, a.inherited, a.annotation, a.doc) for a in new.args] == \
               [(a.name, a.options, a.inherited, a.annotation, a.doc) for a in old.args], old.name
        assert [a.default for a in new.args] == [_expected(a) for a in old.args], old.name
    resnet = {s.name: s for s in again}.get("mmdet.ResNet")
    if resnet is not None:  # mmdet/models/backbones/resnet.py
        assert resnet.arg("norm_cfg").default == {"type": "BN", "requires_grad": True}
        assert resnet.arg("strides").default == [1, 2, 2, 2]  # tuples are stored as lists


def test_non_plain_defaults_keep_their_repr():
    # mmpretrain's LeViT defaults hybrid_backbone to a class (mmpretrain/models/backbones/levit.py)
    from mmpretrain.models.backbones.levit import HybridBackbone

    indexed_backbones(provider("mmpretrain"))
    specs, hit = indexed_backbones(provider("mmpretrain"))
    default = next(s for s in specs if s.name == "mmpretrain.LeViT").arg("hybrid_backbone").default
    assert hit and isinstance(default, Repr)
    assert repr(default) == repr(HybridBackbone) == "<class 'mmpretrain.models.backbones.levit.HybridBackbone'>"
    assert default != Repr("<class 'something.Else'>")


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
        "import sys; from typer.testing import CliRunner; from otxlike.cli.app import app;"
        "r = CliRunner().invoke(app, ['find', '--backbone', 'mmdet']);"
        "print(r.exit_code, 'mmdet.RegNet' in r.output, [m for m in ('torch', 'mmdet', 'mmengine') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), check=True)
    assert out.stdout.strip() == "0 True []"
