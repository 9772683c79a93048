"""Shared fixtures: a small real digits dataset and fresh classification workspaces."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from otxlike.configedit.data import create_workspace
from otxlike.data.digits import write_digits_classification
from otxlike.workspace.workspace import Workspace


def pytest_configure(config):
    """timm's weights come from the Hugging Face hub: give the session an empty hub cache of its own
    and no hub requests (tests run offline; huggingface_hub reads both when it is imported)."""
    import os
    import shutil
    import tempfile

    hub = tempfile.mkdtemp(prefix="otxlike-test-hf-")
    os.environ["HF_HUB_CACHE"] = hub
    os.environ["HF_HUB_OFFLINE"] = "1"
    config.add_cleanup(lambda: shutil.rmtree(hub, ignore_errors=True))


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Keep the backbone index of the test session out of the user's cache folder."""
    import os

    os.environ["OTXLIKE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """20 real digit scans per class: 16 train / 4 val each, 32x32 PNGs."""
    return write_digits_classification(tmp_path_factory.mktemp("digits"), limit=20)


@pytest.fixture
def workspace(tmp_path, digits) -> Workspace:
    """A new classification workspace pointed at the digits sample."""
    result = create_workspace("classification", tmp_path / "ws", train_root=digits.train_root, val_root=digits.val_root)
    return Workspace.load(result.root)


@pytest.fixture
def cli():
    """Invoke the CLI in-process with a fixed terminal width; returns click's Result."""
    from otxlike.cli.app import app

    runner = CliRunner()

    def invoke(*args, cwd=None):
        import os

        old = os.getcwd()
        if cwd is not None:
            os.chdir(cwd)
        try:
            return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
        finally:
            os.chdir(old)

    return invoke


def snapshot(root) -> dict:
    """Every file under ``root`` (relative path -> bytes), to prove nothing changed."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def canvases(tmp_path_factory):
    """16 train / 8 val canvases (128x128) of real digit scans with COCO JSON and label maps."""
    from otxlike.data.digits import write_digits_canvases

    return write_digits_canvases(tmp_path_factory.mktemp("canvases"), num_train=16, num_val=8)


@pytest.fixture
def copy_split(tmp_path):
    """Copy a split folder to a new place the test may break; returns the copy."""
    import shutil

    def copy(src, name="broken"):
        dst = tmp_path / name
        shutil.copytree(src, dst)
        return dst

    return copy


#: A workspace module registering a backbone with a required argument that nothing names a value
#: for (what ``build --backbone`` must leave for the user to fill in).
NEEDS_INPUT = '''
import torchvision
import otxlike


@otxlike.register_backbone(["needs_width"])
def get_backbone(model_name, width, pretrained=None):
    return otxlike.SequentialBackbone.from_layers(torchvision.models.squeezenet1_1(weights=None).features)
'''


@pytest.fixture
def needs_input(workspace) -> Workspace:
    """The classification workspace with ``custom.needs_width`` (required ``width``) registered."""
    (workspace.root / "custom_backbones.py").write_text(NEEDS_INPUT)
    return Workspace.load(workspace.root)
