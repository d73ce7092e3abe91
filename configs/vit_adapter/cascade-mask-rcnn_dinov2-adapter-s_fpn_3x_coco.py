# ViT-Adapter-S on DINOv2 ViT-S/14, Cascade Mask R-CNN + FPN, 3x + multi-scale, COCO.
# Not in the original (its Cascade configs are DeiT-S/B only) and not yet trained here: no result.
# The Mask R-CNN recipe of mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py (backbone, layer decay, data,
# schedule, runtime) with the original's Cascade heads
# (_base_/models/cascade-mask-rcnn_vit-adapter_fpn.py); the B and L Cascade configs inherit this one.
_base_ = [
    '../_base_/models/cascade-mask-rcnn_vit-adapter_fpn.py',
    '../_base_/datasets/coco_instance_detr-multiscale.py',
    '../_base_/schedules/schedule_adamw-layer-decay_3x.py',
    '../_base_/default_runtime.py',
]

# The backbone, FPN widths and layer decay of _base_/models/vit-adapter_dinov2-s.py, named again:
# that file sets `model` over the Mask R-CNN heads, and mmengine refuses two files that both set
# `model` in one _base_ list (tests/configs/test_config_builds.py keeps the two equal).
model = dict(
    backbone=dict(type='ViTAdapter', arch='dinov2-s',
                  pretrained='pretrained/dinov2_vits14_pretrain_14to16.pth'),
    neck=dict(in_channels=[384] * 4))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.70))
