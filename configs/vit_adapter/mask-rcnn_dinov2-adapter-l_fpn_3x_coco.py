# ViT-Adapter-L on DINOv2 ViT-L/14, Mask R-CNN + FPN, 3x + multi-scale, COCO.
# Original result (mmdet 2.22, 8 GPUs x 2 images): 55.3 box AP, 49.0 mask AP.
# Weights: https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth into
# pretrained/, then `python tools/convert_14to16.py pretrained/dinov2_vitl14_pretrain.pth`.
_base_ = '../_base_/mask-rcnn_dinov2-adapter_fpn_3x_coco.py'

depth = 24
model = dict(
    # Normalisation is done in the pipelines below (see there), not here.
    data_preprocessor=dict(mean=None, std=None, bgr_to_rgb=False),
    backbone=dict(
        embed_dim=1024,
        depth=depth,
        num_heads=16,
        drop_path_rate=0.4,
        deform_num_heads=16,
        deform_ratio=0.5,
        interaction_indexes=[[0, 5], [6, 11], [12, 17], [18, 23]],
        # windowed attention (14x14) except in the last block of each interaction
        window_attn=([True] * 5 + [False]) * 4,
        window_size=([14] * 5 + [None]) * 4,
        pretrained='pretrained/dinov2_vitl14_pretrain_14to16.pth'),
    neck=dict(in_channels=[1024] * 4))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=depth, layer_decay_rate=0.65))

# A quirk of the original L config, kept so that its released checkpoint is evaluated as it was:
# it set img_norm_cfg = mean 127.5, std 127.5 for its TRAIN pipeline only. Its validation and
# test pipelines were inherited from coco_instance.py and kept the ImageNet mean/std, and the
# reported 55.3 / 49.0 AP (and its training-time evaluations) were measured that way. mmdet 3.x
# normalises in the data preprocessor, which serves training and testing alike, so here each
# pipeline normalises for itself (RGB order, as to_rgb=True did) and the preprocessor only pads.
train_pipeline = _base_.train_pipeline[:-1] + [
    dict(type='mmcv.Normalize', mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True),
    _base_.train_pipeline[-1],
]
test_pipeline = _base_.test_pipeline[:-1] + [
    dict(type='mmcv.Normalize', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
         to_rgb=True),
    _base_.test_pipeline[-1],
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
