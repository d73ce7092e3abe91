# ViT-Adapter-L on DINOv2 ViT-L/14, Cascade Mask R-CNN + FPN, 3x + multi-scale, COCO.
# Not in the original (its Cascade configs are DeiT-S/B only) and not yet trained here: no result.
# The Mask R-CNN recipe of mask-rcnn_dinov2-adapter-l_fpn_3x_coco.py (backbone, layer decay, data,
# schedule, runtime) with the original's Cascade heads: the B Cascade config with the L backbone.
_base_ = './cascade-mask-rcnn_dinov2-adapter-b_fpn_3x_coco.py'

# What _base_/models/vit-adapter_dinov2-l.py changes in the backbone file it inherits, stated again
# for the Cascade heads (see the S Cascade config)
model = dict(
    backbone=dict(arch='dinov2-l', pretrained='pretrained/dinov2_vitl14_pretrain_14to16.pth'),
    neck=dict(in_channels=[1024] * 4))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=24, layer_decay_rate=0.65))
