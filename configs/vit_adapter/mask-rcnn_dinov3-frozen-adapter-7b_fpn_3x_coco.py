# DINOv3's frozen adapter on DINOv3 ViT-7B/16, Mask R-CNN + FPN, 3x + multi-scale, COCO.
# No reference result for detection (UNVALIDATED); the adapter is the official DINOv3_Adapter.
# Heads x backbone x schedule; each concern is one file under configs/_base_/.
_base_ = [
    '../_base_/models/mask-rcnn_vit-adapter_fpn.py',
    '../_base_/models/vit-adapter_dinov3-frozen-7b.py',
    '../_base_/datasets/coco_instance_detr-multiscale.py',
    '../_base_/schedules/schedule_adamw-layer-decay_3x.py',
    '../_base_/default_runtime.py',
]

model = dict(backbone=_base_.backbone, neck=dict(in_channels=[_base_.backbone.embed_dim] * 4))
optim_wrapper = dict(paramwise_cfg=_base_.layer_decay)
