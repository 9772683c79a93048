"""The export graph of a two-stage instance segmenter (mmdet ``MaskRCNN``: RPN, RoI box head, FCN mask head).

Batch-wise versions of, in order: ``RPNHead._predict_by_feat_single`` / ``_bbox_post_process``
(top ``nms_pre`` per level, NMS within each level, top ``max_per_img`` proposals),
``SingleRoIExtractor.forward`` (every RoI pooled from every level with torchvision's
``roi_align``, then the level of ``map_roi_levels`` kept, as mmdeploy's rewrite does),
``BBoxHead._predict_by_feat_single`` with ``multiclass_nms`` (class-specific boxes, one NMS with
class offsets), and ``FCNMaskHead`` on the final boxes. Outputs: see :mod:`otxlike.deploy.graphs`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from otxlike.deploy.graphs import _Detections, _Normalize


class MaskRCNNGraph(nn.Module):
    """mmdet ``MaskRCNN`` -> ``boxes`` (N, D, 4), ``scores`` (N, D), ``labels`` (N, D), ``masks`` (N, D, h, w)."""

    output_names = ("boxes", "scores", "labels", "masks")

    def __init__(self, model: nn.Module, input_size: tuple[int, int]):
        super().__init__()
        self.model, self.normalize, self.input_size = model, _Normalize(model.data_preprocessor), input_size
        rpn, rcnn = model.test_cfg.rpn, model.test_cfg.rcnn
        self.rpn_tail = _Detections(input_size, rpn.get("nms", {}), 0.0, rpn.get("max_per_img", 1000))
        self.rpn_pre = int(rpn.get("nms_pre", -1))
        self.rpn_min_size = float(rpn.get("min_bbox_size", 0))
        self.tail = _Detections(input_size, rcnn.get("nms", {}), rcnn.get("score_thr", 0.05), rcnn.get("max_per_img", 100))
        with torch.no_grad():
            feats = model.extract_feat(torch.zeros(1, 3, *input_size))
            sizes = [f.shape[-2:] for f in model.rpn_head(feats)[0]]
            priors = model.rpn_head.prior_generator.grid_priors(sizes, device="cpu")
        for i, p in enumerate(priors):
            self.register_buffer(f"priors{i}", p)
        self.levels = len(priors)

    def proposals(self, feats, n):
        """RPN: (N, P, 4) proposals and (N, P) objectness (0 for padding rows)."""
        head = self.model.rpn_head
        cls_scores, bbox_preds = head(feats)
        dim = head.bbox_coder.encode_size
        boxes, scores, levels = [], [], []
        for i, (cls, reg) in enumerate(zip(cls_scores, bbox_preds)):
            s = cls.permute(0, 2, 3, 1).reshape(n, -1)
            s = s.sigmoid() if head.use_sigmoid_cls else s.reshape(n, -1, 2).softmax(-1)[..., 0]
            d = reg.permute(0, 2, 3, 1).reshape(n, -1, dim)
            p = getattr(self, f"priors{i}")[None].expand(n, -1, -1)
            if 0 < self.rpn_pre < s.shape[1]:
                s, keep = s.topk(self.rpn_pre, dim=1)
                d = torch.gather(d, 1, keep[..., None].expand(-1, -1, dim))
                p = torch.gather(p, 1, keep[..., None].expand(-1, -1, 4))
            boxes.append(head.bbox_coder.decode(p.reshape(-1, 4), d.reshape(-1, dim)).reshape(n, -1, 4))
            scores.append(s)
            levels.append(torch.full((s.shape[1],), i, dtype=torch.long))
        boxes, scores = self.rpn_tail.clip(torch.cat(boxes, 1)), torch.cat(scores, 1)
        w, h = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
        scores = torch.where((w > self.rpn_min_size) & (h > self.rpn_min_size), scores, torch.zeros_like(scores))
        boxes, scores, _ = self.rpn_tail.select_grouped(boxes, scores, torch.cat(levels), 0.0)
        return boxes, scores

    def pool(self, extractor, feats, boxes):
        """(N, R, 4) boxes -> (N * R, C, s, s) RoI features from the level mmdet maps each box to."""
        from torchvision.ops import roi_align

        n, r = boxes.shape[:2]
        image = (torch.cumsum(torch.ones_like(boxes[:, :1, 0]), 0) - 1).expand(-1, r)
        rois = torch.cat([image.reshape(-1, 1), boxes.reshape(-1, 4)], 1)
        level = extractor.map_roi_levels(rois, len(extractor.featmap_strides))
        out = None
        for i, (layer, stride) in enumerate(zip(extractor.roi_layers, extractor.featmap_strides)):
            pooled = roi_align(feats[i], rois, layer.output_size, spatial_scale=1.0 / stride,
                               sampling_ratio=layer.sampling_ratio, aligned=layer.aligned)
            pooled = pooled * (level == i).to(pooled.dtype)[:, None, None, None]
            out = pooled if out is None else out + pooled
        return out

    def forward(self, image):
        roi_head = self.model.roi_head
        feats = self.model.extract_feat(self.normalize(image))
        n = image.shape[0]
        proposals, objectness = self.proposals(feats, n)
        p = proposals.shape[1]
        cls_score, bbox_pred = roi_head.bbox_head(self.pool(roi_head.bbox_roi_extractor, feats, proposals))
        scores = F.softmax(cls_score, dim=-1)[:, :-1]
        c = scores.shape[-1]
        classes = 1 if roi_head.bbox_head.reg_class_agnostic else c
        rois = proposals.reshape(-1, 1, 4).expand(-1, classes, 4).reshape(-1, 4)
        boxes = roi_head.bbox_head.bbox_coder.decode(rois, bbox_pred.reshape(-1, 4))
        boxes = self.tail.clip(boxes.reshape(n, p, classes, 4).expand(n, p, c, 4))
        # padding proposals must not become detections
        scores = scores.reshape(n, p, c) * (objectness > 0).to(scores.dtype)[..., None]
        labels = torch.arange(c).repeat(p)
        boxes, scores, index = self.tail.select_grouped(boxes.reshape(n, p * c, 4), scores.reshape(n, p * c),
                                                         labels, self.tail.score_thr)
        labels = index % c
        mask_pred = roi_head.mask_head(self.pool(roi_head.mask_roi_extractor, feats, boxes))
        d, size = boxes.shape[1], mask_pred.shape[-2:]
        if mask_pred.shape[1] > 1:  # class-specific masks: the channel of each box's label
            mask_pred = torch.gather(mask_pred, 1, labels.reshape(-1, 1, 1, 1).expand(-1, 1, *size))
        return boxes, scores, labels, mask_pred.sigmoid().reshape(n, d, *size)
