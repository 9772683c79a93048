"""Data formats users bring (issue 13): each written from the digits samples by tests/writers.py
(standard library only), detected by ``build --data-root``, checked, and read by the task
library's dataset class with the values the writer put in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from otxlike.configedit.data import create_workspace
from otxlike.engine.config import load_config
from otxlike.errors import OtxlikeError
from otxlike.workspace.workspace import Workspace, config_scope
from tests import writers


def _dataset(ws: Workspace, split: str = "train"):
    """The split's dataset as the Runner builds it (mmengine registry, the config's default scope)."""
    from mmengine.registry import DATASETS, DefaultScope

    cfg = load_config(ws, ws.outputs, ("train", split))
    with DefaultScope.overwrite_default_scope(config_scope(cfg)):
        return DATASETS.build(cfg[f"{split}_dataloader"].dataset)


def _build(task, tmp_path, **data):
    result = create_workspace(task, tmp_path / "ws", **data)
    return Workspace.load(result.root), result.data


def _coco_boxes(split_root: Path) -> dict:
    """``{file name: sorted [x1, y1, x2, y2] boxes}`` of the canvases' own COCO file."""
    coco = json.loads((split_root / "annotations.json").read_text())
    names = {img["id"]: img["file_name"] for img in coco["images"]}
    boxes: dict = {}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        boxes.setdefault(names[a["image_id"]], []).append([x, y, x + w, y + h])
    return {k: sorted(v) for k, v in boxes.items()}


# -- classification ------------------------------------------------------------------------------

def test_ann_list_is_detected_and_read_with_its_labels(tmp_path, digits):
    counts = writers.write_ann_list(digits, tmp_path / "data")
    ws, plan = _build("classification", tmp_path, data_root=tmp_path / "data")
    assert plan.format == "ann-list" and plan.classes == list(digits.classes)
    assert {s: d.images for s, d in plan.checked.items()} == counts
    dataset = _dataset(ws, "val")
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        assert Path(info["img_path"]).parent.name == digits.classes[info["gt_label"]]  # the folder is the class


def test_csv_labels_are_class_names(tmp_path, digits):
    written = writers.write_csv(digits, tmp_path / "data")
    ws, plan = _build("classification", tmp_path, data_root=tmp_path / "data")
    assert plan.format == "csv" and plan.classes == sorted(writers.NAMES)
    dataset = _dataset(ws)
    assert len(dataset) == len(written["train"])
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        assert {plan.classes[info["gt_label"]]} == written["train"][Path(info["img_path"]).name]


def test_multi_label_csv_is_refused_by_the_single_label_template(tmp_path, digits):
    writers.write_csv(digits, tmp_path / "data", multi_label=True)
    with pytest.raises(OtxlikeError, match="do not have exactly one label.*multi-label template"):
        create_workspace("classification", tmp_path / "ws", data_root=tmp_path / "data")
    assert not (tmp_path / "ws").exists()


def test_multi_label_csv_reads_every_label_into_the_multi_label_template(tmp_path, digits, cli):
    written = writers.write_csv(digits, tmp_path / "data", multi_label=True)
    ws, plan = _build("classification", tmp_path, data_root=tmp_path / "data", template_id="cls_multilabel_resnet18")
    assert plan.classes == sorted(set(writers.NAMES) | {"odd", "even"})
    assert plan.checked["train"].annotations == sum(len(v) for v in written["train"].values())
    dataset = _dataset(ws)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        assert {plan.classes[c] for c in info["gt_label"]} == written["train"][Path(info["img_path"]).name]
    result = cli("train", "-w", ws.root, "--eval-key", "accuracy/top1")  # not a key of this template's metrics
    assert result.exit_code == 2 and "multi-label/mAP" in result.output, result.output


def test_val_split_is_seeded_stratified_and_leaves_the_data_alone(tmp_path, digits):
    before = sorted(p.relative_to(digits.train_root) for p in digits.train_root.rglob("*"))
    with pytest.raises(OtxlikeError, match="holds no val split.*--val-split"):
        create_workspace("classification", tmp_path / "nosplit", data_root=digits.train_root)
    ws, plan = _build("classification", tmp_path, data_root=digits.train_root, val_split=0.25)
    train = (ws.root / "splits" / "train.txt").read_text().split()
    val = (ws.root / "splits" / "val.txt").read_text().split()
    everything = [p.relative_to(digits.train_root).as_posix() for p in digits.train_root.rglob("*.png")]
    assert not set(train) & set(val) and sorted(train + val) == sorted(everything)
    assert len(val) == round(len(everything) * 0.25)
    assert sorted({v.split("/")[0] for v in val}) == list(digits.classes)  # stratified: every class held out
    assert plan.checked["val"].images == len(val) and len(_dataset(ws, "val")) == len(val)
    again = create_workspace("classification", tmp_path / "ws2", data_root=digits.train_root, val_split=0.25)
    assert (again.root / "splits" / "val.txt").read_text() == "\n".join(val) + "\n"  # seeded
    assert sorted(p.relative_to(digits.train_root) for p in digits.train_root.rglob("*")) == before
    with pytest.raises(OtxlikeError, match="already has a val split"):
        create_workspace("classification", tmp_path / "ws3", data_root=digits.root, val_split=0.2)


# -- detection / instance segmentation -----------------------------------------------------------

def test_coco_standard_layout(tmp_path, canvases):
    writers.write_coco_standard(canvases, tmp_path / "coco")
    ws, plan = _build("detection", tmp_path, data_root=tmp_path / "coco")
    data = (ws.root / "data.yaml").read_text()
    assert plan.format == "coco" and "annotations/instances_train2017.json" in data and "img_prefix: train2017" in data
    coco = json.loads((canvases.train_root / "annotations.json").read_text())
    assert plan.checked["train"].images == len(coco["images"]) and plan.checked["train"].annotations == len(coco["annotations"])
    expected = _coco_boxes(canvases.train_root)
    dataset = _dataset(ws)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        assert sorted(inst["bbox"] for inst in info["instances"]) == expected[Path(info["img_path"]).name]


def test_coco_json_given_as_the_train_split(tmp_path, canvases):
    writers.write_coco_standard(canvases, tmp_path / "coco")
    ws, plan = _build("instance-segmentation", tmp_path,
                      train_root=tmp_path / "coco" / "annotations" / "instances_train2017.json",
                      val_root=tmp_path / "coco" / "annotations" / "instances_val2017.json")
    assert plan.format == "coco" and sorted(plan.checked) == ["train", "val"]
    assert plan.checked["val"].images == 8


def test_voc_reads_as_mmdet_voc_dataset_does(tmp_path, canvases):
    from mmdet.datasets import VOCDataset

    voc = writers.write_voc(canvases, tmp_path / "data")
    ws, plan = _build("detection", tmp_path, data_root=tmp_path / "data")  # finds VOCdevkit/VOC2007 inside
    assert plan.format == "voc" and sorted(plan.checked) == ["train", "val"]
    ours = _dataset(ws, "val")
    theirs = VOCDataset(data_root=str(voc.parent), ann_file="VOC2007/ImageSets/Main/val.txt",
                        data_prefix=dict(sub_data_root="VOC2007/"), metainfo=dict(classes=tuple(plan.classes)),
                        test_mode=True, pipeline=[])
    assert len(ours) == len(theirs) == 8
    for i in range(len(ours)):
        a, b = ours.get_data_info(i), theirs.get_data_info(i)
        assert Path(a["img_path"]).name == Path(b["img_path"]).name
        assert sorted((x["bbox"], x["bbox_label"]) for x in a["instances"]) == \
            sorted((x["bbox"], x["bbox_label"]) for x in b["instances"])


@pytest.mark.parametrize("task, polygons", [("detection", False), ("instance-segmentation", True)])
def test_yolo_boxes_and_polygons(tmp_path, canvases, task, polygons):
    written = writers.write_yolo(canvases, tmp_path / "yolo", polygons=polygons)
    ws, plan = _build(task, tmp_path, data_root=tmp_path / "yolo")
    assert plan.format == "yolo" and plan.classes == [str(d) for d in range(10)]
    dataset = _dataset(ws)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        expected = sorted([x, y, x + w, y + h] for x, y, w, h in written["train"][Path(info["img_path"]).name])
        got = sorted((inst["bbox"] for inst in info["instances"]), key=lambda b: [round(v) for v in b])
        np.testing.assert_allclose(got, expected, atol=1e-3)
        if polygons:
            assert all(len(inst["mask"][0]) == 8 for inst in info["instances"])


def test_detection_checks_name_the_file(tmp_path, canvases, copy_split):
    broken = copy_split(canvases.train_root)
    coco = json.loads((broken / "annotations.json").read_text())
    coco["annotations"][0]["bbox"] = [100, 100, 50, 50]  # 128 x 128 canvases
    coco["images"][1]["width"] = 64
    (broken / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(OtxlikeError, match=r"000001.png is 128x128, the file says 64x128"):
        create_workspace("detection", tmp_path / "a", train_root=broken)
    coco["images"][1]["width"] = 128
    (broken / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(OtxlikeError, match=r"annotation 1 has box \[100, 100, 50, 50\] outside its 128x128 image"):
        create_workspace("detection", tmp_path / "b", train_root=broken)
    # two categories of one name: mmdet looks a label's category up by name (getCatIds(catNms=...))
    twin = {**coco, "categories": coco["categories"] + [{**coco["categories"][0], "id": 99}]}
    (broken / "annotations.json").write_text(json.dumps(twin))
    name = coco["categories"][0]["name"]
    with pytest.raises(OtxlikeError, match=f"categories {coco['categories'][0]['id']}, 99 share the name '{name}'"):
        create_workspace("detection", tmp_path / "b", train_root=broken)

    writers.write_yolo(canvases, tmp_path / "yolo")
    label = sorted((tmp_path / "yolo" / "labels" / "train").iterdir())[0]
    label.write_text("3 0.5 0.5 0.1\n")
    with pytest.raises(OtxlikeError, match=f"{label.name} line 1: '3 0.5 0.5 0.1'"):
        create_workspace("detection", tmp_path / "c", data_root=tmp_path / "yolo")
    label.write_text("0 0.5 0.5 -0.1 0.2\n")
    with pytest.raises(OtxlikeError, match="has a box of size"):
        create_workspace("detection", tmp_path / "d", data_root=tmp_path / "yolo")

    voc = writers.write_voc(canvases, tmp_path / "voc")
    xml = sorted((voc / "Annotations").iterdir())[0]
    xml.write_text(xml.read_text().replace("<xmin>", "<xmin>abc"))
    with pytest.raises(OtxlikeError, match=f"VOC file {xml} is malformed"):
        create_workspace("detection", tmp_path / "e", data_root=tmp_path / "voc")
    assert not any((tmp_path / n).exists() for n in "abcde")


def _coco_copy(canvases, copy_split, change) -> tuple[Path, Path]:
    """Copies of the canvases' train and val splits with ``change(coco)`` applied to both JSONs."""
    roots = []
    for split in ("train", "val"):
        root = copy_split(canvases.root / split, name=f"changed_{split}")
        coco = json.loads((root / "annotations.json").read_text())
        change(coco)
        (root / "annotations.json").write_text(json.dumps(coco))
        roots.append(root)
    return roots[0], roots[1]


def test_coco_class_names_follow_the_labels_mmdet_gives(tmp_path, canvases, copy_split):
    """Categories listed out of id order ([10, 9, ..., 1]): mmdet's CocoDataset numbers labels in
    the order of the file's ``categories`` (mmdet/datasets/coco.py, pycocotools getCatIds), so
    the name otxlike gives each label must be the name of the annotation's category."""
    from mmdet.datasets import CocoDataset

    train, val = _coco_copy(canvases, copy_split, lambda coco: coco["categories"].reverse())
    ws, plan = _build("detection", tmp_path, train_root=train, val_root=val)
    coco = json.loads((train / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    files = {img["id"]: img["file_name"] for img in coco["images"]}
    expected: dict = {}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        expected.setdefault(files[a["image_id"]], []).append(([x, y, x + w, y + h], names[a["category_id"]]))
    theirs = CocoDataset(ann_file=str(train / "annotations.json"), data_prefix=dict(img=str(train / "images") + "/"),
                         metainfo=dict(classes=tuple(plan.classes)), test_mode=True, pipeline=[])
    for dataset in (theirs, _dataset(ws)):
        assert len(dataset) == len(files)
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            got = sorted((inst["bbox"], plan.classes[inst["bbox_label"]]) for inst in info["instances"])
            assert got == sorted(expected[Path(info["img_path"]).name])


def test_coco_without_area_is_completed_in_the_cache_and_scores_with_cocoeval(tmp_path, canvases, copy_split):
    """A COCO file without ``area`` (and an image without width/height) is completed in a cached
    copy (area = box w * h), the user's file is left alone, and pycocotools' COCOeval scores the
    copy: the ground truth boxes as detections give AP 1."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from tests.conftest import snapshot

    def strip(coco):
        for a in coco["annotations"]:
            del a["area"]
        del coco["images"][0]["width"], coco["images"][0]["height"]

    train, val = _coco_copy(canvases, copy_split, strip)
    before = snapshot(tmp_path)
    ws, plan = _build("detection", tmp_path, train_root=train, val_root=val)
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("ws")} == before
    user = json.loads((val / "annotations.json").read_text())
    eval_file = Path(plan.checked["val"].eval_ann_file)
    gt = COCO(str(eval_file))
    detections = gt.loadRes([{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                              "score": 1.0} for a in user["annotations"]])
    scored = COCOeval(gt, detections, "bbox")
    scored.evaluate()
    scored.accumulate()
    scored.summarize()
    assert scored.stats[0] == pytest.approx(1.0)
    for a in user["annotations"]:
        assert gt.anns[a["id"]]["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3])
    first = user["images"][0]
    with Image.open(val / "images" / first["file_name"]) as im:
        assert (gt.imgs[first["id"]]["width"], gt.imgs[first["id"]]["height"]) == im.size
    assert eval_file != val / "annotations.json"
    assert len(_dataset(ws, "val")) == len(user["images"])


APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64)  # a ._<name> resource fork


def test_hidden_files_and_folders_are_not_data(tmp_path, digits, canvases):
    """macOS ``._<name>`` AppleDouble files, ``.DS_Store`` and hidden folders are skipped by the
    formats' listings and by predict's, instead of stopping the split as unreadable images."""
    from otxlike.deploy.runtime import list_images, read_images

    data = tmp_path / "imagenet"
    shutil.copytree(digits.root, data)
    (data / "train" / "3" / "._0.png").write_bytes(APPLE_DOUBLE)
    (data / "train" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (data / "val" / "3" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    shutil.copytree(data / "train" / "3", data / "train" / ".thumbnails")  # a hidden folder of real images
    (data / "train" / ".thumbnails" / "._0.png").unlink()
    ws, plan = _build("classification", tmp_path, data_root=data)
    assert plan.classes == list(digits.classes)
    assert plan.checked["train"].images == len(list(digits.train_root.rglob("*.png"))) == digits.num_train
    assert plan.checked["val"].images == digits.num_val

    voc = writers.write_voc(canvases, tmp_path / "voc")
    (voc / "Annotations" / "._000001.xml").write_bytes(APPLE_DOUBLE)
    (voc / "JPEGImages" / "._000001.jpg").write_bytes(APPLE_DOUBLE)
    _, voc_plan = _build("detection", tmp_path / "v", data_root=tmp_path / "voc")
    assert voc_plan.format == "voc" and voc_plan.checked["train"].images == canvases.num_train

    folder = data / "train" / "3"
    real = sorted(p for p in digits.train_root.joinpath("3").iterdir())
    assert [p.name for p in list_images(folder)] == [p.name for p in real]
    batch, _ = read_images(list_images(folder), (32, 32))
    assert batch.shape == (len(real), 3, 32, 32)


def _oriented_image(path: Path, orientation: int) -> None:
    """A 40 x 20 (w x h) RGB image, not symmetric, saved with EXIF ``Orientation``."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :10] = (255, 0, 0)
    pixels[:5, :, 1] = 200
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif)


def _sixteen_bit_png(path: Path, channels: int) -> None:
    """A 50 x 30 16-bit PNG (grey or BGR) with values across 0..65535, written by OpenCV."""
    import cv2

    grey = (np.arange(30 * 50).reshape(30, 50) * 43).astype(np.uint16)
    cv2.imwrite(str(path), grey if channels == 1 else np.stack([grey, grey // 2, grey // 3], -1))


@pytest.mark.parametrize("name, write", [
    ("o6.jpg", lambda p: _oriented_image(p, 6)),
    ("o8.jpg", lambda p: _oriented_image(p, 8)),
    ("o3.jpg", lambda p: _oriented_image(p, 3)),
    ("o6.png", lambda p: _oriented_image(p, 6)),
    ("o6.webp", lambda p: _oriented_image(p, 6)),
    ("o6.tif", lambda p: _oriented_image(p, 6)),
    ("grey16.png", lambda p: _sixteen_bit_png(p, 1)),
    ("colour16.png", lambda p: _sixteen_bit_png(p, 3)),
])
def test_image_size_and_predict_read_images_as_the_training_pipeline(tmp_path, name, write):
    """``image_size`` (header only) and predict's ``read_images`` see the pixels the templates'
    ``LoadImageFromFile`` (mmcv's transform at its defaults) gives training: EXIF orientation
    applied, 16-bit scaled to 8-bit; the stretch to the input size is Pillow's bilinear resize
    (docs/deploy.md's contract)."""
    from mmcv.transforms import LoadImageFromFile

    from otxlike.data.images import image_size
    from otxlike.deploy.runtime import read_images

    path = tmp_path / name
    write(path)
    loaded = LoadImageFromFile()({"img_path": str(path)})
    height, width = loaded["img"].shape[:2]
    assert image_size(path) == (width, height)
    batch, sizes = read_images([path], (height, width))
    assert sizes == [(height, width)]
    np.testing.assert_array_equal(batch[0], loaded["img"][..., ::-1].transpose(2, 0, 1))
    resized = np.asarray(Image.fromarray(np.ascontiguousarray(loaded["img"][..., ::-1])).resize((24, 16), Image.BILINEAR))
    batch, sizes = read_images([path], (16, 24))
    assert sizes == [(height, width)]
    np.testing.assert_array_equal(batch[0], resized.transpose(2, 0, 1))


# -- semantic segmentation -----------------------------------------------------------------------

@pytest.mark.parametrize("fmt, writer, folder", [
    ("cityscapes", writers.write_cityscapes, ""),
    ("ade20k", writers.write_ade20k, ""),
    ("voc-seg", writers.write_voc_seg, "VOC2012"),
])
def test_segmentation_formats_give_the_label_maps_back(tmp_path, canvases, fmt, writer, folder):
    writer(canvases, tmp_path / "data")
    ws, plan = _build("segmentation", tmp_path, data_root=tmp_path / "data" / folder)
    assert plan.format == fmt and plan.classes == (canvases.train_root / "classes.txt").read_text().split() and \
        (plan.checked["train"].images, plan.checked["val"].images) == (16, 8)
    originals = {p.stem: np.asarray(Image.open(p)) for p in (canvases.val_root / "labels").iterdir()}
    dataset = _dataset(ws, "val")
    assert len(dataset) == len(originals)
    for i in range(len(dataset)):
        item = dataset[i]
        stem = Path(item["data_samples"].img_path).stem.split("_")[-2 if fmt == "cityscapes" else -1]
        original = originals[f"{int(stem):06d}"] if fmt == "cityscapes" else originals[stem]
        np.testing.assert_array_equal(item["data_samples"].gt_sem_seg.data[0].numpy(), original)


def test_coco_masks_rasterise_to_the_label_maps_of_the_sample(tmp_path, canvases):
    writers.write_coco_standard(canvases, tmp_path / "coco")  # canvases: RLE masks, category id = digit + 1
    ws, plan = _build("segmentation", tmp_path, data_root=tmp_path / "coco")
    assert plan.format == "coco-seg" and plan.classes == ["background", *(str(d) for d in range(10))]
    originals = {p.name: np.asarray(Image.open(p)) for p in (canvases.val_root / "labels").iterdir()}
    dataset = _dataset(ws, "val")
    assert len(dataset) == len(originals)
    for i in range(len(dataset)):
        item = dataset[i]
        np.testing.assert_array_equal(item["data_samples"].gt_sem_seg.data[0].numpy(),
                                      originals[Path(item["data_samples"].img_path).name])


def test_cityscapes_without_train_ids_says_how_to_make_them(tmp_path, canvases):
    writers.write_cityscapes(canvases, tmp_path / "data")
    for p in (tmp_path / "data" / "gtFine").rglob("*_labelTrainIds.png"):
        p.rename(p.with_name(p.name.replace("labelTrainIds", "labelIds")))
    with pytest.raises(OtxlikeError, match="createTrainIdLabelImgs"):
        create_workspace("segmentation", tmp_path / "ws", data_root=tmp_path / "data")


# -- the CLI -------------------------------------------------------------------------------------

def test_cli_prints_what_it_found_and_switches_format(cli, tmp_path, canvases):
    writers.write_voc(canvases, tmp_path / "voc")
    result = cli("build", "--task", "detection", "-w", tmp_path / "ws", "--data-root", tmp_path / "voc")
    assert result.exit_code == 0, result.output
    assert "Data: voc at" in result.output and "train: 16 images" in result.output and "val: 8 images" in result.output
    writers.write_coco_standard(canvases, tmp_path / "coco")
    result = cli("build", "-w", tmp_path / "ws", "--data-root", tmp_path / "coco")
    assert result.exit_code == 0 and "Data: coco" in result.output, result.output
    assert "format: coco" in (tmp_path / "ws" / "data.yaml").read_text()
    result = cli("build", "-w", tmp_path / "ws", "--data-root", tmp_path / "coco", "--data-format", "yolo")
    assert result.exit_code == 2 and "does not look like yolo data" in result.output
    result = cli("build", "-w", tmp_path / "ws", "--data-root", tmp_path / "coco", "--train-data-roots", tmp_path)
    assert result.exit_code == 2 and "cannot be combined" in result.output


def test_find_lists_every_format_per_task(cli):
    from otxlike.tasks import TASK_SPECS

    doc = json.loads(cli("find", "--data-formats", "--json").output)
    assert {(r["task"], r["format"]) for r in doc["data_formats"]} == \
        {(t, f) for t, spec in TASK_SPECS.items() for f in spec.data_formats}
    result = cli("find", "--data-formats", "--task", "segmentation")
    assert result.exit_code == 0 and "cityscapes" in result.output and "yolo" not in result.output


# -- trained and evaluated -----------------------------------------------------------------------

WRITTEN = {  # format -> (task, how the test data are written, the folder given to build, metric)
    "imagenet --val-split": ("classification", lambda d, c, out: shutil.copytree(d.train_root, out), "", "accuracy/top1"),
    "ann-list": ("classification", lambda d, c, out: writers.write_ann_list(d, out), "", "accuracy/top1"),
    "csv": ("classification", lambda d, c, out: writers.write_csv(d, out), "", "accuracy/top1"),
    "coco": ("detection", lambda d, c, out: writers.write_coco_standard(c, out), "", "coco/bbox_mAP"),
    "voc": ("detection", lambda d, c, out: writers.write_voc(c, out), "", "coco/bbox_mAP"),
    "yolo": ("detection", lambda d, c, out: writers.write_yolo(c, out), "", "coco/bbox_mAP"),
    "yolo polygons": ("instance-segmentation", lambda d, c, out: writers.write_yolo(c, out, polygons=True), "",
                      "coco/segm_mAP"),
    "cityscapes": ("segmentation", lambda d, c, out: writers.write_cityscapes(c, out), "", "mIoU"),
    "ade20k": ("segmentation", lambda d, c, out: writers.write_ade20k(c, out), "", "mIoU"),
    "voc-seg": ("segmentation", lambda d, c, out: writers.write_voc_seg(c, out), "VOC2012", "mIoU"),
    "coco-seg": ("segmentation", lambda d, c, out: writers.write_coco_standard(c, out), "", "mIoU"),
}


#: CI trains one format per task family (and the --val-split path); make test-all trains them all.
SAMPLED = ("imagenet --val-split", "coco", "yolo polygons", "voc-seg")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", [f if f in SAMPLED else pytest.param(f, marks=pytest.mark.exhaustive) for f in WRITTEN])
def test_each_format_trains_one_epoch_and_evaluates(tmp_path, digits, canvases, fmt):
    """(The 'coco' own layout and 'mmseg' are what the templates' own tests train.) Training reads
    8 images of the split (mmengine ``BaseDataset(indices=8)``) to keep the suite short."""
    from otxlike.engine.evaluate import evaluate
    from otxlike.engine.hparams import HParams
    from otxlike.engine.train import train

    task, write, folder, metric = WRITTEN[fmt]
    write(digits, canvases, tmp_path / "data")
    ws, plan = _build(task, tmp_path, data_root=tmp_path / "data" / folder,
                      val_split=0.25 if "--val-split" in fmt else None)
    assert plan.format == fmt.split()[0]
    options = ("train_dataloader.dataset.indices=8", "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
               "val_dataloader.num_workers=0", "val_dataloader.persistent_workers=False")
    trained = train(ws, hparams=HParams(epochs=1, weights="none", cfg_options=options))
    assert trained.checkpoint.is_file() and metric in trained.metrics
    evaluated = evaluate(ws)
    assert metric in json.loads((evaluated.run_dir / "metrics.json").read_text())["metrics"]


@pytest.mark.slow
def test_multi_label_trains_exports_and_scores_the_same_in_onnx_runtime(tmp_path, digits):
    from otxlike.deploy.evaluate import evaluate_model
    from otxlike.deploy.export import export
    from otxlike.deploy.predict import predict
    from otxlike.deploy.runtime import load_exported
    from otxlike.engine.evaluate import evaluate
    from otxlike.engine.train import train

    writers.write_csv(digits, tmp_path / "data", multi_label=True)
    ws, _ = _build("classification", tmp_path, data_root=tmp_path / "data", template_id="cls_multilabel_resnet18")
    train(ws, epochs=2)
    torch_metrics = evaluate(ws).metrics
    exported = export(ws, "onnx")
    assert exported.info["postprocess"] == {"multi_label": True, "threshold": 0.5}
    onnx_metrics = evaluate_model(ws, exported.folder).metrics
    assert onnx_metrics["multi-label/mAP"] == pytest.approx(torch_metrics["multi-label/mAP"], abs=0.01)
    model = load_exported(exported.folder)
    result = predict(model, tmp_path / "data" / "images", tmp_path / "pred", pictures=False)
    for item in result.results:
        expected = [c for c, s in zip(model.info["classes"], item["scores"]) if s >= 0.5]
        assert item["predicted_classes"] == expected


# -- --skip-bad-images ---------------------------------------------------------------------------

def _messy_digits(digits, out: Path) -> list[Path]:
    """A copy of the digits sample with one train image of random bytes and one truncated."""
    shutil.copytree(digits.root, out)
    first, second = sorted((out / "train" / "3").iterdir())[:2]
    first.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    second.write_bytes(second.read_bytes()[:60])
    return [first, second]


def test_skip_bad_images_accepts_messy_data_at_build(cli, tmp_path, digits):
    bad = _messy_digits(digits, tmp_path / "messy")
    result = cli("build", "--task", "classification", "-w", tmp_path / "ws", "--data-root", tmp_path / "messy")
    assert result.exit_code == 2 and "2 image files under" in result.output and "--skip-bad-images" in result.output
    assert not (tmp_path / "ws").exists()
    result = cli("build", "--task", "classification", "-w", tmp_path / "ws", "--data-root", tmp_path / "messy",
                 "--skip-bad-images")
    assert result.exit_code == 0, result.output
    assert f"train: {digits.num_train - 2} images" in result.output
    assert "2 unreadable files left out" in result.output and bad[0].name in result.output


@pytest.mark.slow
def test_skip_bad_images_trains_without_them_and_records_them(cli, tmp_path, digits):
    import yaml

    bad = _messy_digits(digits, tmp_path / "messy")
    assert cli("build", "--task", "classification", "-w", tmp_path / "ws", "--data-root", tmp_path / "messy",
               "--skip-bad-images").exit_code == 0
    result = cli("train", "-w", tmp_path / "ws", "--epochs", "1")
    assert result.exit_code == 2 and "cannot be read" in result.output
    result = cli("train", "-w", tmp_path / "ws", "--epochs", "1", "--skip-bad-images")
    assert result.exit_code == 0 and "left out 2 unreadable files" in result.output, result.output
    run = next(d for d in (tmp_path / "ws" / "outputs").iterdir() if d.name.endswith("_train"))
    used = yaml.safe_load((run / "hparams.yaml").read_text())
    assert used["skip_bad_images"] is True and [s.split(" (")[0] for s in used["skipped_images"]] == [str(b) for b in bad]
