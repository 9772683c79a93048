"""The fits tier: the check on real small backbones, the matrix read with both tiers, and
``find --task T [--verified]``.

Expected values come from the libraries' documentation, not from the check's own output:
ResNet-18's stages have 64/128/256/512 channels at strides 4/8/16/32 (He et al. 2016, Table 1;
torchvision's ``resnet.py`` ``BasicBlock`` widths); mmpretrain's ``ResNet`` returns only its last
stage by default (``out_indices`` "Default: ``(3, )``", ``mmpretrain/models/backbones/resnet.py``),
so a multi-scale neck gets ``out_indices`` 0..3 (mmdet's configs give mmpretrain backbones their
four stages the same way, e.g. ``configs/convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py``:
``type='mmpretrain.ConvNeXt'``, ``out_indices=[0, 1, 2, 3]``);
a ViT with 16x16 patches has every level at stride 16 (timm ``vision_transformer.py``,
``patch_size=16``).
"""

import json

import pytest

from otxlike.compat.fits import check_fits, task_context
from otxlike.compat.matrix import MATRIX_FORMAT, load_matrix, task_tier
from otxlike.errors import OtxlikeError
from otxlike.tasks import TASKS


@pytest.fixture(scope="module")
def contexts(tmp_path_factory):
    """The four tasks' default templates, read once."""
    root = tmp_path_factory.mktemp("fits")
    return [task_context(task, root) for task in TASKS]


def test_template_contexts_are_the_templates_sizes_and_strides(contexts):
    by_task = {c.task: c for c in contexts}
    assert by_task["classification"].input_size == 32  # templates' data_pipeline.py input_size
    assert {by_task[t].input_size for t in ("detection", "instance-segmentation", "segmentation")} == {128}
    for task in ("detection", "instance-segmentation", "segmentation"):  # ResNet-18 templates + FPN
        assert by_task[task].old_strides == (4, 8, 16, 32)
    assert by_task["detection"].backbone_defaults == {"norm_eval": False, "frozen_stages": 1}


def test_resnet18_fits_every_task_with_its_documented_stages(contexts):
    verdicts = check_fits("torchvision.resnet18", contexts)
    assert all(v.ok and v.reason is None for v in verdicts.values()), verdicts
    for task in ("detection", "instance-segmentation", "segmentation"):
        assert verdicts[task].shapes.channels == (64, 128, 256, 512)
        assert verdicts[task].shapes.strides == (4, 8, 16, 32)
    assert verdicts["classification"].shapes.channels[-1] == 512


def test_a_backbone_with_only_its_last_stage_gets_every_stage_for_the_multiscale_tasks(contexts):
    verdicts = check_fits("mmpretrain.ResNet", contexts)  # depth 18 (first option), out_indices (3,)
    assert verdicts["classification"].ok and verdicts["classification"].shapes.channels == (512,)
    for task in ("detection", "instance-segmentation", "segmentation"):
        verdict = verdicts[task]
        assert verdict.ok, verdict.reason
        assert verdict.strides == (32,)  # what its default out_indices gave at 128x128
        assert verdict.shapes.channels == (64, 128, 256, 512)  # out_indices (0, 1, 2, 3): every stage
        assert verdict.shapes.strides == (4, 8, 16, 32)


def test_a_pooled_backbone_fits_with_feature_maps(contexts):
    # mmpretrain's ConvNeXt pools before its final norm by default (gap_before_final_norm=True,
    # out_indices=-1); ConvNeXt-T's stages have 96/192/384/768 channels (Liu et al. 2022, Table 9)
    verdicts = check_fits("mmpretrain.ConvNeXt", contexts)
    assert verdicts["classification"].ok and verdicts["classification"].shapes.channels == (768,)
    assert verdicts["segmentation"].ok and verdicts["segmentation"].shapes.channels == (96, 192, 384, 768)


def test_a_vit_is_built_for_the_templates_input_size_and_lacks_the_fpn_strides(contexts):
    verdicts = check_fits("timm.vit_tiny_patch16_224", contexts)  # fixed_input_size: img_size set
    assert verdicts["classification"].ok and set(verdicts["classification"].shapes.strides) == {16}
    assert not verdicts["detection"].ok
    assert "no output at stride 8, 32" in verdicts["detection"].reason  # FPN makes 64 itself, not 4/8/32


def test_fits_reports_an_unknown_backbone():
    with pytest.raises(OtxlikeError, match="has no backbone called .NoSuchNet."):
        check_fits("mmdet.NoSuchNet", [])


def _write(tmp_path, doc) -> object:
    path = tmp_path / "compat.json"
    path.write_text(json.dumps(doc))
    return path


def test_the_matrix_is_read_with_both_tiers_verified_first(tmp_path):
    ok, no = {"ok": True, "reason": None}, {"ok": False, "reason": "backbone X fails on a 32x32 input"}
    doc = {"format": MATRIX_FORMAT, "versions": {}, "backbones": {
        "lib.A": {"strides": None, "tasks": {"detection": {**ok, "seconds": 1.0}},
                  "fits": {"detection": no, "segmentation": ok, "classification": no}},
        "lib.B": {"strides": None, "tasks": {"detection": {"ok": False, "reason": "train: boom", "seconds": 1.0}},
                  "fits": {"detection": ok}},
    }}
    matrix = load_matrix(_write(tmp_path, doc))
    assert task_tier("lib.A", "detection", matrix) == ("verified", None)       # verified outranks a fits failure
    assert task_tier("lib.A", "segmentation", matrix) == ("fits", None)
    assert task_tier("lib.A", "classification", matrix) == (None, "fits: backbone X fails on a 32x32 input")
    assert task_tier("lib.A", "instance-segmentation", matrix) == (None, None)  # not checked
    assert task_tier("lib.B", "detection", matrix) == (None, "train: boom")     # a verified failure outranks a fit
    assert task_tier("lib.C", "detection", matrix) == (None, None)


def test_a_matrix_of_the_old_format_is_refused(tmp_path):
    path = _write(tmp_path, {"format": 1, "versions": {}, "backbones": {}})
    with pytest.raises(OtxlikeError, match=f"not a compatibility matrix of format {MATRIX_FORMAT}"):
        load_matrix(path)


def test_find_task_lists_both_tiers_and_verified_only_the_verified(cli):
    matrix = load_matrix()
    tiers = {n: task_tier(n, "detection", matrix)[0] for n in matrix["backbones"] if n.startswith("timm.")}
    verified = sorted(n for n, t in tiers.items() if t == "verified")
    fitting = sorted(n for n, t in tiers.items() if t == "fits")
    assert verified and fitting  # the shipped matrix has both for timm

    doc = json.loads(cli("find", "--backbone", "timm", "--task", "detection", "--json").output)
    listed = {b["name"]: b for b in doc["backbones"]}
    assert sorted(n for n, b in listed.items() if b["tier"] == "verified") == verified
    assert sorted(n for n, b in listed.items() if b["tier"] == "fits") == fitting
    assert all("detection" in b["fits"] and "detection" not in b["tasks"]
               for b in listed.values() if b["tier"] == "fits")

    only = json.loads(cli("find", "--backbone", "timm", "--task", "detection", "--verified", "--json").output)
    assert sorted(b["name"] for b in only["backbones"]) == verified
    assert {b["tier"] for b in only["backbones"]} == {"verified"}

    table = cli("find", "--backbone", "timm", "--task", "detection", "--verified")
    assert table.exit_code == 0, table.output
    text = " ".join(table.output.split())
    assert f"{len(verified)} of " in text and f"{len(fitting)} more fit it (without --verified)" in text


def test_verified_without_a_task_is_one_line_exit_2(cli):
    result = cli("find", "--backbone", "mmdet", "--verified")
    assert result.exit_code == 2
    assert "--verified needs --task" in result.output and "Traceback" not in result.output
