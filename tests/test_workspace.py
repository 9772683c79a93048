import pytest
import yaml
from mmengine.config import Config

from otxlike.configedit.data import create_workspace, set_data_roots
from otxlike.errors import OtxlikeError
from otxlike.workspace.templates import get_template, list_templates
from otxlike.workspace.workspace import Workspace
from tests.conftest import snapshot


def test_build_writes_the_workspace(workspace, digits):
    names = {p.name for p in workspace.root.iterdir()}
    assert {"workspace.yaml", "template.yaml", "model.py", "data_pipeline.py", "data.yaml"} <= names
    assert workspace.task == "classification" and workspace.manifest["template"] == "cls_resnet18"
    data = yaml.safe_load((workspace.root / "data.yaml").read_text())
    assert data["train"]["data_root"] == str(digits.train_root.resolve())
    cfg = Config.fromfile(str(workspace.model_py))  # self-contained: no _base_, loads as is
    assert cfg.default_scope == "mmpretrain" and cfg.model.head.num_classes == 10


def test_num_classes_follows_the_data(tmp_path, digits):
    import shutil

    train = tmp_path / "three"
    for c in "012":
        shutil.copytree(digits.train_root / c, train / c)
    ws = Workspace.load(create_workspace("classification", tmp_path / "ws", train_root=train).root)
    assert Config.fromfile(str(ws.model_py)).model.head.num_classes == 3
    assert "# model.py: the model of this otxlike workspace" in ws.model_py.read_text()


def test_existing_workspace_is_never_overwritten(workspace):
    (workspace.model_py).write_text(workspace.model_py.read_text() + "# my edit\n")
    before = snapshot(workspace.root)
    with pytest.raises(OtxlikeError, match="already exists"):
        create_workspace("classification", workspace.root)
    assert snapshot(workspace.root) == before


def test_bad_inputs_leave_nothing(tmp_path):
    with pytest.raises(OtxlikeError, match="unknown task"):
        create_workspace("clasification", tmp_path / "a")
    with pytest.raises(OtxlikeError, match="does not exist"):
        create_workspace("classification", tmp_path / "b", train_root=tmp_path / "nope")
    with pytest.raises(OtxlikeError, match="no template 'x'"):
        create_workspace("classification", tmp_path / "c", template_id="x")
    assert list(tmp_path.iterdir()) == []


def test_templates():
    assert get_template("classification").id == "cls_resnet18"
    assert all(t.task in ("classification", "detection", "instance-segmentation", "segmentation") for t in list_templates())


def test_load_outside_a_workspace(tmp_path):
    with pytest.raises(OtxlikeError, match="not an otxlike workspace"):
        Workspace.load(tmp_path)


def test_set_data_roots_backs_up(workspace, digits, tmp_path):
    old = (workspace.root / "data.yaml").read_text()
    set_data_roots(workspace, {"val": digits.train_root})
    assert yaml.safe_load((workspace.root / "data.yaml").read_text())["val"]["data_root"] == str(digits.train_root)
    backups = list((workspace.root / ".backup").rglob("data.yaml"))
    assert len(backups) == 1 and backups[0].read_text() == old
