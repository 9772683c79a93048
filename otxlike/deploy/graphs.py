"""Export graphs: a trained mm model wrapped so that images go in and final results come out.

Every graph takes ``image``: float32 (N, 3, H, W), RGB, pixel values 0..255, already resized to
the exported input size; the data preprocessor's colour conversion and mean/std normalisation
happen inside the graph. N is dynamic; H and W are fixed at export. Outputs per task:

- classification: ``scores`` (N, num_classes), softmax probabilities (mmpretrain
  ``ClsHead._get_predictions``);
- semantic segmentation: ``logits`` (N, num_classes, H, W), the decode head's output resized
  bilinearly to the input size (mmseg ``EncoderDecoder.postprocess_result``), and ``labels``
  (N, H, W) int64, its argmax;
- detection: ``boxes`` (N, D, 4) as x1, y1, x2, y2 in input pixels, ``scores`` (N, D) and
  ``labels`` (N, D) int64, the top D = ``max_per_img`` detections after class-wise NMS; rows past
  the last detection have score 0;
- instance segmentation: the detection outputs plus ``masks`` (N, D, h, w), the mask head's
  per-instance probabilities in box coordinates (h, w = the mask head's RoI size, 28 x 28 in
  Mask R-CNN), to be pasted into each box and thresholded at 0.5 (mmdet ``FCNMaskHead``).

The post-processing follows mmdet's ``BaseDenseHead._predict_by_feat_single`` and
``_bbox_post_process`` and ``StandardRoIHead`` batch-wise, the way mmdeploy's rewrites of those
functions do, so that the ONNX graph holds one ``NonMaxSuppression`` op for the whole batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from otxlike.errors import OtxlikeError


class _BatchedNMS(torch.autograd.Function):
    """Class-wise NMS over a batch, as ONNX's ``NonMaxSuppression`` op defines it.

    ``forward`` runs torchvision's ``batched_nms`` (eager PyTorch); ``symbolic`` emits the ONNX op
    (opset >= 11) for the TorchScript-based exporter, which OpenVINO and ONNX Runtime both run.
    Inputs: ``boxes`` (N, K, 4) x1y1x2y2, ``scores`` (N, C, K); returns (M, 3) int64 rows of
    (image, class, box index), like the ONNX op.
    """

    @staticmethod
    def forward(ctx, boxes, scores, max_per_class: int, iou_threshold: float, score_threshold: float):
        return batched_nms_indices(boxes, scores, max_per_class, iou_threshold, score_threshold)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class, iou_threshold, score_threshold):
        return g.op(
            "NonMaxSuppression", boxes, scores,
            g.op("Constant", value_t=torch.tensor([max_per_class], dtype=torch.long)),
            g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float)),
            g.op("Constant", value_t=torch.tensor([score_threshold], dtype=torch.float)))


def batched_nms_indices(boxes: torch.Tensor, scores: torch.Tensor, max_per_class: int,
                        iou_threshold: float, score_threshold: float) -> torch.Tensor:
    """(M, 3) int64 rows (image, class, box) kept by class-wise NMS; eager and traceable.

    Args:
        boxes: (N, K, 4) x1, y1, x2, y2.
        scores: (N, C, K); boxes scoring <= ``score_threshold`` are dropped first.
        max_per_class: At most this many boxes per image and class, highest scores first.
        iou_threshold: Suppress a box overlapping a higher-scoring one of its class by more.
        score_threshold: See ``scores``.
    """
    from torchvision.ops import batched_nms

    n, c, k = scores.shape
    flat_scores = scores.reshape(-1)
    flat_boxes = boxes[:, None].expand(n, c, k, 4).reshape(-1, 4)
    groups = torch.arange(n * c, device=scores.device).repeat_interleave(k)
    cand = torch.nonzero(flat_scores > score_threshold).reshape(-1)
    keep = cand[batched_nms(flat_boxes[cand], flat_scores[cand], groups[cand], iou_threshold)]
    group, box = keep // k, keep % k
    rows = torch.stack([group // c, group % c, box], dim=1)
    # at most max_per_class per (image, class): rank inside each group, keep is score-ordered
    order = torch.argsort(group, stable=True)
    sorted_groups = group[order]
    first = torch.searchsorted(sorted_groups, sorted_groups)  # position of each group's best box
    rank = torch.zeros_like(group).index_put(
        (order,), torch.arange(group.shape[0], device=group.device) - first)
    return rows[rank < max_per_class]


#: Where each data preprocessor keeps its "swap the channels" flag (its input is BGR, as mmcv loads
#: images, so a swap means the network sees RGB): mmengine/model/base_model/data_preprocessor.py
#: ``ImgDataPreprocessor._channel_conversion`` (bgr_to_rgb or rgb_to_bgr; also mmdet's
#: ``DetDataPreprocessor`` and mmpretrain's ``SelfSupDataPreprocessor``),
#: mmpretrain/models/utils/data_preprocessor.py ``ClsDataPreprocessor.to_rgb``,
#: mmseg/models/data_preprocessor.py ``SegDataPreProcessor.channel_conversion``.
CHANNEL_SWAP_ATTRIBUTES = ("_channel_conversion", "to_rgb", "channel_conversion")


def swaps_channels(preprocessor: nn.Module) -> bool:
    """Whether ``preprocessor`` reverses the channel order of its (3, H, W) input before
    normalising: the first of :data:`CHANNEL_SWAP_ATTRIBUTES` it has (rules in
    mmengine/model/base_model/data_preprocessor.py, mmpretrain/models/utils/data_preprocessor.py,
    mmseg/models/data_preprocessor.py).

    Raises:
        OtxlikeError: It has none of them: its colour handling is unknown, so the exported
            graph's colour order cannot be told.
    """
    for name in CHANNEL_SWAP_ATTRIBUTES:
        if hasattr(preprocessor, name):
            return bool(getattr(preprocessor, name))
    raise OtxlikeError(f"export does not know the colour order of a {type(preprocessor).__name__} data preprocessor "
                       f"(it has none of {', '.join(CHANNEL_SWAP_ATTRIBUTES)})",
                       "use the task's usual data preprocessor in model.py (ClsDataPreprocessor, "
                       "DetDataPreprocessor or SegDataPreProcessor)")


class _Normalize(nn.Module):
    """RGB 0..255 (N, 3, H, W) -> what the model's data preprocessor hands the network.

    The preprocessor receives BGR (mmcv's loading order); when it does not swap the channels
    (:func:`swaps_channels`) the network is BGR and the RGB input is flipped here (``to_bgr``).

    Raises:
        OtxlikeError: A preprocessor :func:`swaps_channels` does not know.
    """

    def __init__(self, preprocessor: nn.Module):
        super().__init__()
        self.to_bgr = not swaps_channels(preprocessor)
        enabled = getattr(preprocessor, "_enable_normalize", False)
        mean = preprocessor.mean.detach().float().reshape(1, -1, 1, 1) if enabled else torch.zeros(1, 3, 1, 1)
        std = preprocessor.std.detach().float().reshape(1, -1, 1, 1) if enabled else torch.ones(1, 3, 1, 1)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.to_bgr:
            image = image.flip(1)
        return (image - self.mean) / self.std


class ClassifierGraph(nn.Module):
    """mmpretrain ``ImageClassifier`` -> ``scores`` (N, num_classes): softmax, or sigmoid for a
    multi-label head (``MultiLabelClsHead._get_predictions``)."""

    output_names = ("scores",)

    def __init__(self, model: nn.Module, input_size: tuple[int, int]):
        super().__init__()
        self.model, self.normalize, self.input_size = model, _Normalize(model.data_preprocessor), input_size
        self.multi_label = "MultiLabel" in type(model.head).__name__

    def forward(self, image):
        logits = self.model.head(self.model.extract_feat(self.normalize(image)))
        return logits.sigmoid() if self.multi_label else F.softmax(logits, dim=1)


class SegmenterGraph(nn.Module):
    """mmseg ``EncoderDecoder`` (whole-image inference) -> ``logits`` (N, C, H, W), ``labels`` (N, H, W)."""

    output_names = ("logits", "labels")

    def __init__(self, model: nn.Module, input_size: tuple[int, int]):
        super().__init__()
        self.model, self.normalize, self.input_size = model, _Normalize(model.data_preprocessor), input_size

    def forward(self, image):
        feats = self.model.extract_feat(self.normalize(image))
        logits = self.model.decode_head(feats)
        logits = F.interpolate(logits, size=self.input_size, mode="bilinear",
                               align_corners=self.model.decode_head.align_corners)
        return logits, logits.argmax(dim=1)


class _Detections(nn.Module):
    """Shared tail of the detection graphs: batched class-wise NMS, then the top D per image."""

    def __init__(self, input_size: tuple[int, int], nms_cfg: dict, score_thr: float, max_per_img: int):
        super().__init__()
        self.input_size = input_size
        self.iou = float(nms_cfg.get("iou_threshold", 0.5))
        self.score_thr, self.max_per_img = float(score_thr), int(max_per_img)
        self.onnx = False  # set by the exporter: emit ONNX's NonMaxSuppression

    def clip(self, boxes):
        h, w = self.input_size
        return torch.stack([boxes[..., 0].clamp(0, w), boxes[..., 1].clamp(0, h),
                            boxes[..., 2].clamp(0, w), boxes[..., 3].clamp(0, h)], dim=-1)

    def select(self, boxes, scores, score_thr: float):
        """boxes (N, K, 4), scores (N, K, C) -> boxes (N, D, 4), scores (N, D), labels (N, D), index (N, D)."""
        n, k, c = scores.shape
        per_class = scores.transpose(1, 2).contiguous()
        nms = _BatchedNMS.apply if self.onnx else batched_nms_indices
        rows = nms(boxes, per_class, self.max_per_img, self.iou, score_thr)
        img, cls, box = rows[:, 0], rows[:, 1], rows[:, 2]
        kept = torch.zeros_like(per_class).reshape(per_class.shape[0], -1)
        kept = kept.index_put((img, cls * k + box), per_class[img, cls, box])
        top = min(self.max_per_img, c * k)
        top_scores, top_index = kept.topk(top, dim=1)
        labels, index = top_index // k, top_index % k
        top_boxes = torch.gather(boxes, 1, index[..., None].expand(-1, -1, 4))
        return top_boxes, top_scores, labels, index


    def select_grouped(self, boxes, scores, groups, score_thr: float):
        """One NMS within each group, as mmcv's ``batched_nms`` does it (boxes shifted apart by
        group), then the top D: boxes (N, M, 4) inside the input, scores (N, M), groups (M,) int64
        -> boxes (N, D, 4), scores (N, D), index (N, D) into M."""
        m = scores.shape[1]
        shifted = boxes + (groups.to(boxes.dtype) * (max(self.input_size) + 1.0))[None, :, None]
        nms = _BatchedNMS.apply if self.onnx else batched_nms_indices
        rows = nms(shifted, scores[:, None], self.max_per_img, self.iou, score_thr)
        img, idx = rows[:, 0], rows[:, 2]
        kept = torch.zeros_like(scores).index_put((img, idx), scores[img, idx])
        top_scores, index = kept.topk(min(self.max_per_img, m), dim=1)
        return torch.gather(boxes, 1, index[..., None].expand(-1, -1, 4)), top_scores, index


class DenseDetectorGraph(nn.Module):
    """mmdet single-stage detector with a dense head (ATSS, RetinaNet, FCOS, ...) ->
    ``boxes`` (N, D, 4), ``scores`` (N, D), ``labels`` (N, D).

    The head's priors and box decoding are its own (``prior_generator``, ``bbox_coder``);
    ``nms_pre`` keeps the top priors by their best class score (mmdeploy's ``pre_top_k``
    rewrite), not per level as mmdet does.
    """

    output_names = ("boxes", "scores", "labels")

    def __init__(self, model: nn.Module, input_size: tuple[int, int]):
        super().__init__()
        head = model.bbox_head
        cfg = head.test_cfg
        self.model, self.normalize, self.input_size = model, _Normalize(model.data_preprocessor), input_size
        self.tail = _Detections(input_size, cfg.get("nms", {}), cfg.get("score_thr", 0.0), cfg.get("max_per_img", 100))
        self.nms_pre = int(cfg.get("nms_pre", -1))
        with torch.no_grad():  # the priors depend only on the (fixed) input size
            feats = model.extract_feat(torch.zeros(1, 3, *input_size))
            sizes = [f.shape[-2:] for f in head(feats)[0]]
            self.register_buffer("priors", torch.cat(head.prior_generator.grid_priors(sizes, device="cpu")))

    def forward(self, image):
        head = self.model.bbox_head
        outs = head(self.model.extract_feat(self.normalize(image)))
        n, dim = image.shape[0], head.bbox_coder.encode_size

        def flat(maps, width):  # per-level (N, A * width, h, w) -> (N, K, width)
            return torch.cat([m.permute(0, 2, 3, 1).reshape(n, -1, width) for m in maps], 1)

        cls, deltas = flat(outs[0], head.cls_out_channels), flat(outs[1], dim)
        factor = flat(outs[2], 1).sigmoid() if len(outs) > 2 and outs[2] is not None else None
        scores = cls.sigmoid() if head.use_sigmoid_cls else cls.softmax(-1)[..., :-1]
        priors = self.priors[None].expand(n, -1, -1)
        if 0 < self.nms_pre < scores.shape[1]:
            _, keep = scores.max(-1)[0].topk(self.nms_pre, dim=1)

            def pick(t):
                return torch.gather(t, 1, keep[..., None].expand(-1, -1, t.shape[-1]))

            scores, deltas, priors = pick(scores), pick(deltas), pick(priors)
            factor = pick(factor) if factor is not None else None
        boxes = head.bbox_coder.decode(priors.reshape(-1, priors.shape[-1]), deltas.reshape(-1, dim))
        boxes = self.tail.clip(boxes.reshape(n, -1, 4))
        threshold = self.tail.score_thr
        if factor is not None:  # mmdet filters on the class score, then multiplies by the factor
            scores = torch.where(scores > threshold, scores * factor, torch.zeros_like(scores))
            threshold = 0.0
        boxes, scores, labels, _ = self.tail.select(boxes, scores, threshold)
        return boxes, scores, labels


def build_graph(model: nn.Module, task: str, input_size: tuple[int, int]) -> nn.Module:
    """The export graph of ``model`` (in eval mode) for ``task``.

    Raises:
        OtxlikeError: A model kind the exporter does not know (a two-stage detector without a
            mask head, a segmenter in sliding-window mode).
    """
    model.eval()
    if task == "classification":
        graph = ClassifierGraph(model, input_size)
    elif task == "segmentation":
        mode = (model.test_cfg or {}).get("mode", "whole")
        if mode != "whole":
            raise OtxlikeError(f"export supports whole-image inference, not test_cfg mode '{mode}'",
                               "set model.test_cfg = dict(mode='whole') in model.py")
        graph = SegmenterGraph(model, input_size)
    elif task == "detection" and hasattr(model, "bbox_head"):
        graph = DenseDetectorGraph(model, input_size)
    elif task == "instance-segmentation" and hasattr(model, "roi_head") and getattr(model.roi_head, "with_mask", False):
        from otxlike.deploy.twostage import MaskRCNNGraph

        graph = MaskRCNNGraph(model, input_size)
    else:
        raise OtxlikeError(f"export does not support a {type(model).__name__} for {task}",
                           "export supports single-stage detectors with a dense head and Mask R-CNN-style models")
    return graph.eval()
