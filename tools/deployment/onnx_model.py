"""Mask R-CNN inference as one traceable module, for ONNX export.

:class:`MaskRCNNForExport` runs an mmdet two-stage detector's own modules (backbone, neck, RPN
head, RoI box and mask heads, with their weights) and redoes in plain torch only what mmdet runs
through mmcv's compiled ops or Python-side bookkeeping: NMS (torchvision's ``batched_nms``, ONNX
NonMaxSuppression) and RoIAlign (torchvision's ``roi_align``, ONNX RoiAlign; mmcv's
``RoIAlign(aligned=True)`` computes the same). The steps follow mmdet 3.x's ``RPNHead.predict``,
``StandardRoIHead.predict_bbox`` / ``predict_mask`` and ``multiclass_nms`` for one image.

Inputs: ``image`` (1, 3, H, W) float32, normalised and zero-padded (:func:`onnx_io.preprocess`),
``image_size`` (2,) float32 (h, w) of the image inside the padding (boxes are clipped to it).
Outputs: ``boxes`` (N, 4) x1 y1 x2 y2 in input pixels, ``scores`` (N,), ``labels`` (N,) int64,
``masks`` (N, 28, 28) probabilities of each box's own class over the box
(:func:`onnx_io.paste_masks` pastes them into the image).
"""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms, roi_align


def _levelled_roi_align(extractor: nn.Module, feats: Sequence[Tensor], boxes: Tensor) -> Tensor:
    """``SingleRoIExtractor(feats, rois)`` for one image: each box pooled from the level its size
    maps to (mmdet's ``map_roi_levels``), one RoIAlign call per level on that level's boxes."""
    rois = torch.cat([torch.zeros_like(boxes[:, :1]), boxes], 1)  # (K, 5), batch index 0
    levels = extractor.map_roi_levels(rois, len(feats))  # (K,)
    layer = extractor.roi_layers[0]
    pooled, order = [], []
    for i, (feat, stride) in enumerate(zip(feats, extractor.featmap_strides)):
        inds = (levels == i).nonzero()[:, 0]
        pooled.append(roi_align(feat, rois[inds], layer.output_size, spatial_scale=1.0 / stride,
                                sampling_ratio=layer.sampling_ratio, aligned=layer.aligned))
        order.append(inds)
    return torch.cat(pooled)[torch.cat(order).argsort()]  # (K, C, S, S) in the boxes' order


class MaskRCNNForExport(nn.Module):
    """A two-stage mmdet detector (Mask R-CNN: RPNHead + StandardRoIHead with a mask head) for one
    image as plain tensors in and out; see the module docstring.

    Args:
        detector (nn.Module): the mmdet detector in eval mode; its ``test_cfg`` sets the RPN's and
            the RoI head's thresholds and NMS.
    """

    def __init__(self, detector: nn.Module):
        super().__init__()
        roi_head = detector.roi_head
        for extractor in (roi_head.bbox_roi_extractor, roi_head.mask_roi_extractor):
            layer = extractor.roi_layers[0]
            if getattr(layer, 'pool_mode', 'avg') != 'avg' or not getattr(layer, 'aligned', False):
                raise ValueError(f'MaskRCNNForExport: {type(extractor).__name__} uses '
                                 f'{layer!r}; export supports RoIAlign(pool_mode="avg", '
                                 'aligned=True), the mmdet default')
        if roi_head.bbox_head.reg_class_agnostic:
            raise ValueError('MaskRCNNForExport: bbox_head.reg_class_agnostic=True is not supported')
        self.detector = detector
        self.rpn_cfg = detector.test_cfg.rpn
        self.rcnn_cfg = detector.test_cfg.rcnn

    def forward(self, image: Tensor, image_size: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        feats = self.detector.extract_feat(image)  # FPN levels, strides 4 .. 64
        proposals = self.proposals(feats, image_size)
        boxes, scores, labels = self.detections(feats, proposals, image_size)
        return boxes, scores, labels, self.masks(feats, boxes, labels)

    def proposals(self, feats: List[Tensor], image_size: Tensor) -> Tensor:
        """RPNHead.predict for one image: per level the ``nms_pre`` best anchors, decoded, clipped,
        empty boxes dropped, NMS within each level, the ``max_per_img`` best. (R, 4)."""
        rpn, cfg = self.detector.rpn_head, self.rpn_cfg
        cls_scores, deltas = rpn(feats)
        priors = rpn.prior_generator.grid_priors([s.shape[-2:] for s in cls_scores],
                                                 device=image_size.device)
        level_scores, level_deltas, level_priors, level_ids = [], [], [], []
        for i, (score, delta, prior) in enumerate(zip(cls_scores, deltas, priors)):
            score = score[0].permute(1, 2, 0).reshape(-1).sigmoid()  # (H * W * A,)
            delta = delta[0].permute(1, 2, 0).reshape(-1, 4)
            if 0 < cfg.nms_pre < score.shape[0]:
                score, keep = score.topk(cfg.nms_pre)
                delta, prior = delta[keep], prior[keep]
            level_scores.append(score)
            level_deltas.append(delta)
            level_priors.append(prior)
            level_ids.append(torch.full_like(score, i, dtype=torch.int64))
        boxes = self._decode(rpn.bbox_coder, torch.cat(level_priors), torch.cat(level_deltas),
                             image_size)
        scores, ids = torch.cat(level_scores), torch.cat(level_ids)
        if cfg.get('min_bbox_size', -1) >= 0:
            size = cfg.min_bbox_size
            valid = ((boxes[:, 2] - boxes[:, 0] > size) & (boxes[:, 3] - boxes[:, 1] > size))
            valid = valid.nonzero()[:, 0]
            boxes, scores, ids = boxes[valid], scores[valid], ids[valid]
        keep = batched_nms(boxes, scores, ids, cfg.nms.iou_threshold)[:cfg.max_per_img]
        return boxes[keep]

    def detections(self, feats: List[Tensor], proposals: Tensor,
                   image_size: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """StandardRoIHead.predict_bbox + multiclass_nms for one image: (N, 4), (N,), (N,)."""
        roi_head, cfg = self.detector.roi_head, self.rcnn_cfg
        extractor = roi_head.bbox_roi_extractor
        pooled = _levelled_roi_align(extractor, feats[:extractor.num_inputs], proposals)
        cls_score, deltas = roi_head.bbox_head(pooled)  # (R, C + 1), (R, 4 C)
        num_classes = cls_score.shape[1] - 1
        scores = cls_score.softmax(-1)[:, :num_classes].reshape(-1)  # (R C,) background dropped
        boxes = self._decode(roi_head.bbox_head.bbox_coder,
                             proposals.repeat_interleave(num_classes, 0), deltas.reshape(-1, 4),
                             image_size)  # (R C, 4)
        labels = torch.arange(num_classes, device=scores.device).expand_as(cls_score[:, 1:])
        labels = labels.reshape(-1)  # (R C,) sizes read from tensors, not Python ints: they trace
        valid = (scores > cfg.score_thr).nonzero()[:, 0]
        boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
        keep = batched_nms(boxes, scores, labels, cfg.nms.iou_threshold)[:cfg.max_per_img]
        return boxes[keep], scores[keep], labels[keep]

    def masks(self, feats: List[Tensor], boxes: Tensor, labels: Tensor) -> Tensor:
        """The mask head's probabilities of each box's class: (N, 28, 28)."""
        roi_head = self.detector.roi_head
        extractor = roi_head.mask_roi_extractor
        pooled = _levelled_roi_align(extractor, feats[:extractor.num_inputs], boxes)
        logits = roi_head.mask_head(pooled)  # (N, C, 28, 28)
        index = labels[:, None, None, None].expand(-1, 1, *logits.shape[2:])
        return logits.gather(1, index)[:, 0].sigmoid()

    @staticmethod
    def _decode(coder: nn.Module, priors: Tensor, deltas: Tensor, image_size: Tensor) -> Tensor:
        """The coder's boxes clipped to the image: (K, 4)."""
        boxes = coder.decode(priors, deltas)  # unclipped (no max_shape)
        h, w = image_size[0], image_size[1]
        x1, y1, x2, y2 = boxes.unbind(-1)
        return torch.stack([x1.clamp(min=0).minimum(w), y1.clamp(min=0).minimum(h),
                            x2.clamp(min=0).minimum(w), y2.clamp(min=0).minimum(h)], -1)
