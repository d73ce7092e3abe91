# ViT-Adapter-S on DINOv2 ViT-S/14, Mask R-CNN + FPN, 3x + multi-scale, COCO.
# Original result (mmdet 2.22, 8 GPUs x 2 images): 51.5 box AP, 45.6 mask AP.
# Weights: https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth into
# pretrained/, then `python tools/convert_14to16.py pretrained/dinov2_vits14_pretrain.pth`.
_base_ = '../_base_/mask-rcnn_dinov2-adapter_fpn_3x_coco.py'

depth = 12
model = dict(
    backbone=dict(
        embed_dim=384,
        depth=depth,
        num_heads=6,
        drop_path_rate=0.2,
        deform_num_heads=6,
        deform_ratio=1.0,
        interaction_indexes=[[0, 2], [3, 5], [6, 8], [9, 11]],
        # windowed attention (14x14) except in the last block of each interaction
        window_attn=[True, True, False] * 4,
        window_size=[14, 14, None] * 4,
        pretrained='pretrained/dinov2_vits14_pretrain_14to16.pth'),
    neck=dict(in_channels=[384] * 4))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=depth, layer_decay_rate=0.70))
