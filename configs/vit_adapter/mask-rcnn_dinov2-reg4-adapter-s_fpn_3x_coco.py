# ViT-Adapter-S on DINOv2 ViT-S/14 with registers, Mask R-CNN + FPN, 3x + multi-scale, COCO.
# No reference result: the DINOv2-S recipe with the reg4 ViT (unvalidated).
# Heads x backbone x schedule; each concern is one file under configs/_base_/.
_base_ = [
    '../_base_/models/mask-rcnn_vit-adapter_fpn.py',
    '../_base_/models/vit-adapter_dinov2-reg4-s.py',
    '../_base_/datasets/coco_instance_detr-multiscale.py',
    '../_base_/schedules/schedule_adamw-layer-decay_3x.py',
    '../_base_/default_runtime.py',
]

model = dict(backbone=_base_.backbone, neck=dict(in_channels=[_base_.backbone.embed_dim] * 4))
optim_wrapper = dict(paramwise_cfg=_base_.layer_decay)
