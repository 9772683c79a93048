import pytest
import yaml
from mmengine.config import Config

from otxlike.configedit.data import create_workspace, set_data
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
    set_data(workspace, val_root=digits.train_root)
    assert yaml.safe_load((workspace.root / "data.yaml").read_text())["val"]["data_root"] == str(digits.train_root)
    backups = list((workspace.root / ".backup").rglob("data.yaml"))
    assert len(backups) == 1 and backups[0].read_text() == old


# -- bad data found at build, before any training ---------------------------------------------

def _first_png(folder):
    return sorted(folder.rglob("*.png"))[0]


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.write_bytes(bytes(range(256))), "cannot identify image file"),
    (lambda f: f.write_bytes(b""), "empty file"),
    (lambda f: f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2]), "image files under"),
])
def test_unreadable_images_are_found_at_build(cli, tmp_path, digits, copy_split, damage, message):
    train = copy_split(digits.train_root, "train")
    bad = _first_png(train)
    damage(bad)
    result = cli("build", "--task", "classification", "--workspace", tmp_path / "ws",
                 "--train-data-roots", train, "--val-data-roots", digits.val_root)
    assert result.exit_code == 2 and message in result.output, result.output
    assert f"under {train} cannot be read: {bad.relative_to(train).as_posix()} (" in result.output
    assert not (tmp_path / "ws").exists()


def test_a_class_only_in_val_is_found_at_build(cli, tmp_path, digits, copy_split):
    val = copy_split(digits.val_root, "val")
    (val / "extra").mkdir()
    import shutil

    shutil.copy(_first_png(val), val / "extra" / "x.png")
    result = cli("build", "--task", "classification", "--workspace", tmp_path / "ws",
                 "--train-data-roots", digits.train_root, "--val-data-roots", val)
    assert result.exit_code == 2 and "only in val: ['extra']" in result.output, result.output
    assert not (tmp_path / "ws").exists()


def test_bad_annotations_and_label_maps_are_found_at_build(cli, tmp_path, canvases, copy_split):
    import json

    from PIL import Image

    train = copy_split(canvases.train_root, "boxes")
    coco = json.loads((train / "annotations.json").read_text())
    coco["annotations"][0]["bbox"] = [1, 2, 3]
    (train / "annotations.json").write_text(json.dumps(coco))
    result = cli("build", "--task", "detection", "--workspace", tmp_path / "det", "--train-data-roots", train)
    assert result.exit_code == 2 and "has bbox [1, 2, 3]" in result.output, result.output

    train = copy_split(canvases.train_root, "nomasks")
    coco = json.loads((train / "annotations.json").read_text())
    del coco["annotations"][1]["segmentation"]
    (train / "annotations.json").write_text(json.dumps(coco))
    assert cli("build", "--task", "detection", "--workspace", tmp_path / "det2", "--train-data-roots",
               train).exit_code == 0  # boxes only: masks are not read
    result = cli("build", "--task", "instance-segmentation", "--workspace", tmp_path / "inst",
                 "--train-data-roots", train)
    assert result.exit_code == 2 and f"annotation {coco['annotations'][1]['id']} has no segmentation" in result.output

    train = copy_split(canvases.train_root, "labels")
    label = _first_png(train / "labels")
    Image.open(label).resize((64, 64)).save(label)
    result = cli("build", "--task", "segmentation", "--workspace", tmp_path / "seg", "--train-data-roots", train)
    assert result.exit_code == 2 and f"{label.name} is (64, 64) but its image is (128, 128)" in result.output
    assert not any((tmp_path / n).exists() for n in ("det", "inst", "seg"))
