# ViT-Adapter-B on DINOv2 ViT-B/14, Cascade Mask R-CNN + FPN, 3x + multi-scale, COCO.
# Not in the original (its Cascade configs are DeiT-S/B only) and not yet trained here: no result.
# The Mask R-CNN recipe of mask-rcnn_dinov2-adapter-b_fpn_3x_coco.py (backbone, layer decay, data,
# schedule, runtime) with the original's Cascade heads
# (_base_/models/cascade-mask-rcnn_vit-adapter_fpn.py).
_base_ = [
    '../_base_/models/cascade-mask-rcnn_vit-adapter_fpn.py',
    '../_base_/models/vit-adapter_dinov2-b.py',
    '../_base_/datasets/coco_instance_detr-multiscale.py',
    '../_base_/schedules/schedule_adamw-layer-decay_3x.py',
    '../_base_/default_runtime.py',
]

model = dict(backbone=_base_.backbone, neck=dict(in_channels=[_base_.backbone.embed_dim] * 4))
optim_wrapper = dict(paramwise_cfg=_base_.layer_decay)
