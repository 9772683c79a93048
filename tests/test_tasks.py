"""Detection, instance segmentation and semantic segmentation workspaces on digit canvases."""

import json

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image
from pycocotools import mask as mask_utils

from otxlike.configedit.backbone import swap_backbone
from otxlike.configedit.data import create_workspace
from otxlike.engine.evaluate import evaluate
from otxlike.engine.train import train
from otxlike.errors import OtxlikeError
from otxlike.workspace.workspace import Workspace
from tests.conftest import snapshot

CANVAS_TASKS = ("detection", "instance-segmentation", "segmentation")


def _workspace(task, tmp_path, canvases, name="ws"):
    return Workspace.load(create_workspace(task, tmp_path / name, train_root=canvases.train_root,
                                           val_root=canvases.val_root).root)


# -- the sample data ---------------------------------------------------------------------------

def test_boxes_masks_and_label_maps_agree(canvases):
    coco = json.loads((canvases.val_root / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == [str(d) for d in range(10)]
    assert len(coco["images"]) == 8 and len(coco["annotations"]) >= 8
    for ann in coco["annotations"]:
        mask = mask_utils.decode(ann["segmentation"]).astype(bool)
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert ann["area"] == mask.sum() == int(mask_utils.area(ann["segmentation"]))
        image = next(i for i in coco["images"] if i["id"] == ann["image_id"])
        labels = np.asarray(Image.open(canvases.val_root / "labels" / image["file_name"]))
        assert (labels[mask] == ann["category_id"]).all()  # value d + 1 for digit d, category id d + 1
        pixels = np.asarray(Image.open(canvases.val_root / "images" / image["file_name"]).convert("L"))
        assert pixels[mask].min() > 64  # the mask is the bright stroke


def test_canvases_are_deterministic(tmp_path):
    from otxlike.data.digits import write_digits_canvases

    a = write_digits_canvases(tmp_path / "a", num_train=3, num_val=2)
    b = write_digits_canvases(tmp_path / "b", num_train=3, num_val=2)
    assert (a.train_root / "annotations.json").read_text() == (b.train_root / "annotations.json").read_text()


# -- workspaces --------------------------------------------------------------------------------

@pytest.mark.parametrize("task, scope, num_classes", [
    ("detection", "mmdet", 10), ("instance-segmentation", "mmdet", 10), ("segmentation", "mmseg", 11),
])
def test_build_sets_num_classes_from_the_data(task, scope, num_classes, tmp_path, canvases):
    ws = _workspace(task, tmp_path, canvases)
    cfg = Config.fromfile(str(ws.model_py))
    assert cfg.default_scope == scope
    text = ws.model_py.read_text()
    assert text.count(f"num_classes={num_classes}") == text.count("num_classes=") >= 1


def test_find_template_lists_every_task(cli):
    result = cli("find", "--template")
    for template in ("cls_resnet18", "cls_multilabel_resnet18", "det_atss_r18", "inst_maskrcnn_r18", "seg_fpn_r18"):
        assert template in result.output


# -- bad data: one clear error before training, nothing written --------------------------------

def _break_coco(split, change):
    path = split / "annotations.json"
    coco = json.loads(path.read_text())
    change(coco)
    path.write_text(json.dumps(coco))


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(categories=[]), "has no categories"),
    (lambda c: c.update(images=[]), "has no images"),
    (lambda c: c["annotations"][0].update(category_id=99), "category ids [99] missing"),
    (lambda c: c["annotations"][0].update(image_id=999), "refer to image ids"),
    (lambda c: c["images"][0].update(file_name="nope.png"), "images named in"),
])
def test_bad_coco_is_refused_at_build(tmp_path, canvases, copy_split, change, message):
    broken = copy_split(canvases.train_root)
    _break_coco(broken, change)
    with pytest.raises(OtxlikeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        create_workspace("detection", tmp_path / "ws", train_root=broken)
    assert not (tmp_path / "ws").exists()


def test_bad_val_data_fails_before_training(tmp_path, canvases, copy_split):
    ws = _workspace("detection", tmp_path, canvases)
    broken = copy_split(canvases.val_root)
    (broken / "images" / "000000.png").unlink()
    data = (ws.root / "data.yaml").read_text().replace(str(canvases.val_root), str(broken))
    (ws.root / "data.yaml").write_text(data)
    before = snapshot(ws.root)
    with pytest.raises(OtxlikeError, match="1 of 8 images named in .* are missing"):
        train(ws)
    assert snapshot(ws.root) == before


@pytest.mark.parametrize("breakage, message", [
    ("value", r"has values \[12\] outside the 11 classes"),
    ("name", "do not match by name"),
    ("empty", "no \\*.png images"),
])
def test_bad_label_maps(tmp_path, canvases, copy_split, breakage, message):
    broken = copy_split(canvases.train_root)
    first = broken / "labels" / "000000.png"
    if breakage == "value":
        labels = np.asarray(Image.open(first)).copy()
        labels[0, 0] = 12
        Image.fromarray(labels).save(first)
    elif breakage == "name":
        first.rename(broken / "labels" / "other.png")
    else:
        for p in (broken / "images").iterdir():
            p.unlink()
    with pytest.raises(OtxlikeError, match=message):
        create_workspace("segmentation", tmp_path / "ws", train_root=broken)
    assert not (tmp_path / "ws").exists()


def test_cli_reports_bad_coco_in_one_line(cli, tmp_path, canvases, copy_split):
    broken = copy_split(canvases.train_root)
    _break_coco(broken, lambda c: c.update(categories=[]))
    result = cli("build", "--task", "detection", "--workspace", tmp_path / "ws", "--train-data-roots", broken)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "has no categories" in result.output


# -- backbone swaps keep the strides the heads were built for ----------------------------------

def test_fpn_start_level_follows_a_backbone_without_stride_4(tmp_path, canvases):
    ws = _workspace("detection", tmp_path, canvases)
    result = swap_backbone(ws, "mmdet.CSPDarknet")  # outputs at strides 8, 16, 32
    cfg = Config.fromfile(str(ws.model_py))
    assert result.shapes.strides == (8, 16, 32)
    assert cfg.model.neck.start_level == 0 and cfg.model.neck.in_channels == list(result.shapes.channels)


def test_missing_used_stride_is_refused(tmp_path, canvases):
    ws = _workspace("instance-segmentation", tmp_path, canvases)
    before = snapshot(ws.root)
    with pytest.raises(OtxlikeError, match="no output at stride 4, 8, 16"):
        swap_backbone(ws, "mmseg.ERFNet")  # one map at stride 2 and no out_indices to ask for more
    assert snapshot(ws.root) == before


def test_a_backbone_defaulting_to_its_last_stage_gives_the_neck_every_stride(tmp_path, canvases):
    # mmdet's EfficientNet returns only layer 6 by default (out_indices (6, ), stride 32); the FPN
    # of Mask R-CNN reads strides 4/8/16/32, which EfficientNet-B0 has (Tan & Le 2019, Table 1)
    ws = _workspace("instance-segmentation", tmp_path, canvases)
    result = swap_backbone(ws, "mmdet.EfficientNet")
    assert result.shapes.strides == (4, 8, 16, 32)
    cfg = Config.fromfile(str(ws.model_py))
    assert len(cfg.model.backbone.out_indices) == 4 and list(cfg.model.neck.in_channels) == list(result.shapes.channels)
    assert "out_indices: [" in ws.backbone_yaml.read_text()


def test_mask_rcnn_strides_move_with_a_backbone_starting_at_stride_8(tmp_path, canvases):
    # The FPN reads strides 8/16/32 and adds 64 and 128: its five outputs are at twice the old
    # strides, so the anchor and RoI strides are doubled to stay true.
    ws = _workspace("instance-segmentation", tmp_path, canvases)
    result = swap_backbone(ws, "mmdet.CSPDarknet")
    cfg = Config.fromfile(str(ws.model_py))
    assert result.shapes.strides == (8, 16, 32)
    assert cfg.model.rpn_head.anchor_generator.strides == [8, 16, 32, 64, 128]
    assert cfg.model.roi_head.bbox_roi_extractor.featmap_strides == [8, 16, 32, 64]
    assert cfg.model.roi_head.mask_roi_extractor.featmap_strides == [8, 16, 32, 64]


def test_segmentation_fpn_reads_a_backbone_starting_at_stride_8(tmp_path, canvases):
    # The FPN's 4th output (stride 64) is its extra level; FPNHead's feature_strides follow. The
    # swap's whole-model run proves the shapes line up.
    ws = _workspace("segmentation", tmp_path, canvases)
    result = swap_backbone(ws, "mmdet.CSPDarknet")
    cfg = Config.fromfile(str(ws.model_py))
    assert result.shapes.strides == (8, 16, 32)
    assert cfg.model.neck.in_channels == list(result.shapes.channels) and cfg.model.neck.num_outs == 4
    assert cfg.model.decode_head.feature_strides == [8, 16, 32, 64]


def test_a_backbone_starting_at_stride_8_with_two_outputs_there_gives_the_fpn_the_last(tmp_path, canvases):
    # mmseg's BiSeNetV1 returns (x_fuse, x_context8, x_context16) (its forward in
    # mmseg/models/backbones/bisenetv1.py): the fused map and the context path's map at stride 8,
    # then the context path's at 16; both context maps have context_channels[0] channels, 128
    # in the library's configs (configs/_base_/models/bisenetv1_r18-d32.py). The FPN reads the last
    # output at 8 and the one at 16 and makes 32 and 64 itself; FPNHead's strides move along.
    ws = _workspace("segmentation", tmp_path, canvases)
    result = swap_backbone(ws, "mmseg.BiSeNetV1")
    cfg = Config.fromfile(str(ws.model_py))
    assert tuple(cfg.model.backbone.out_indices) == (1, 2)
    assert result.shapes.strides == (8, 16)
    assert list(cfg.model.neck.in_channels) == [128, 128]
    assert cfg.model.decode_head.feature_strides == [8, 16, 32, 64]


def test_detection_fpn_makes_the_largest_stride_itself(tmp_path, canvases):
    ws = _workspace("detection", tmp_path, canvases)
    result = swap_backbone(ws, "torchvision.squeezenet1_1")  # stages at strides 4, 8, 16
    cfg = Config.fromfile(str(ws.model_py))
    assert result.shapes.strides == (4, 8, 16)
    assert cfg.model.neck.start_level == 1 and cfg.model.neck.num_outs == 5  # reads 8, 16; adds 32, 64, 128


def test_extra_outputs_are_dropped_with_out_indices(tmp_path, canvases):
    ws = _workspace("segmentation", tmp_path, canvases)
    (ws.root / "bb.yaml").write_text(
        "backbone: {type: mmdet.MobileNetV2, out_indices: [0, 1, 2, 4, 7], norm_eval: false}\n")
    result = swap_backbone(ws, str(ws.root / "bb.yaml"))  # index 0 is stride 2: not used
    cfg = Config.fromfile(str(ws.model_py))
    assert tuple(cfg.model.backbone.out_indices) == (1, 2, 4, 7)
    assert result.shapes.strides == (4, 8, 16, 32)


def test_of_several_outputs_at_one_stride_the_last_is_kept(tmp_path, canvases):
    # mmpretrain's MobileNetV2 returns only conv2 by default (out_indices (7,)); the FPN needs every
    # stride, so the swap asks for 0..7. Per the arch table in mmdet/models/backbones/mobilenet_v2.py
    # (and mmpretrain's, the same: [expand, channel, blocks, stride] = [1,16,1,1], [6,24,2,2],
    # [6,32,3,2], [6,64,4,2], [6,96,3,1], [6,160,3,2], [6,320,1,1], then conv2 with 1280 channels),
    # out_index i is layer i+1 for i < 7 and conv2 for 7: strides 2, 4, 8, 16, 16, 32, 32, 32. The
    # FPN takes the last (deepest) output at each of 4/8/16/32: out_indices (1, 2, 4, 7), mmdet's own
    # default for MobileNetV2 (`out_indices=(1, 2, 4, 7)` in that file; its shipped configs agree:
    # configs/yolo/yolov3_mobilenetv2_8xb24-ms-416-300e_coco.py (2, 4, 6),
    # configs/ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py (4, 7): index 4, not 3, at stride 16),
    # so the FPN reads 24, 32, 96 and 1280 channels (widen_factor 1).
    import torch
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    ws = _workspace("detection", tmp_path, canvases)
    result = swap_backbone(ws, "mmpretrain.MobileNetV2")
    cfg = Config.fromfile(str(ws.model_py))
    assert tuple(cfg.model.backbone.out_indices) == (1, 2, 4, 7)
    assert "out_indices: [1, 2, 4, 7]" in ws.backbone_yaml.read_text()
    assert list(cfg.model.neck.in_channels) == [24, 32, 96, 1280]
    assert result.shapes.strides == (4, 8, 16, 32)

    backbone = {k: v for k, v in cfg.model.backbone.items() if k != "init_cfg"}
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        module = MODELS.build(backbone)
    module.eval()  # (its train() override returns None)
    assert module.widen_factor == 1.0
    with torch.no_grad():
        outputs = module(torch.zeros(1, 3, 128, 128))
    assert [o.shape[1] for o in outputs] == [24, 32, 96, 1280]
    assert [128 // o.shape[-1] for o in outputs] == [4, 8, 16, 32]


# -- every task trains and evaluates with a backbone from another library ----------------------

@pytest.mark.slow
@pytest.mark.parametrize("task, backbone, metric", [
    ("detection", "torchvision.resnet18", "coco/bbox_mAP"),
    ("instance-segmentation", "mmseg.ResNetV1c", "coco/segm_mAP"),
    ("segmentation", "mmdet.RegNet", "mIoU"),
])
def test_swap_train_eval(task, backbone, metric, tmp_path, canvases):
    ws = _workspace(task, tmp_path, canvases)
    swap_backbone(ws, backbone)
    trained = train(ws, epochs=1)
    assert trained.checkpoint.is_file() and metric in trained.metrics
    evaluated = evaluate(ws)
    doc = json.loads((evaluated.run_dir / "metrics.json").read_text())
    assert doc["metrics"][metric] == pytest.approx(trained.metrics[metric])
    assert 0.0 <= doc["metrics"][metric] <= 100.0
