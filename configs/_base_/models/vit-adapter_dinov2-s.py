# DINOv2 ViT-S/14 in ViT-Adapter-S, in the ViT-Adapter Mask R-CNN recipe: the heads, data, schedule
# and runtime of the four files below, plus the backbone (model.backbone), one FPN input width per
# backbone map (model.neck.in_channels) and the backbone's layer decay (optim_wrapper.paramwise_cfg).
# Weights: https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth into
# pretrained/, then `python tools/convert_14to16.py pretrained/dinov2_vits14_pretrain.pth`.
#
# Every other backbone file inherits this one, directly or through a sibling, and states only what
# differs; a config inheriting any of them changes the backbone the same way, through model.backbone
# and optim_wrapper.paramwise_cfg. The recipe comes in through this chain, not beside the backbone in
# a detector config's _base_ list, because mmengine refuses a key (here `model`) that two files of one
# _base_ list both define. For the same reason the Cascade and DINO configs, whose heads come from
# other mmdet bases, state their backbone themselves.
_base_ = [
    './mask-rcnn_vit-adapter_fpn.py',
    '../datasets/coco_instance_detr-multiscale.py',
    '../schedules/schedule_adamw-layer-decay_3x.py',
    '../default_runtime.py',
]

model = dict(
    backbone=dict(
        type='ViTAdapter',
        # the ViT: DINOv2's 518x518 (37x37 patches of 14) position grid, read as 37x37 of 16
        pretrain_size=592,
        img_size=592,
        patch_size=16,
        embed_dim=384,
        depth=12,
        num_heads=6,
        mlp_ratio=4,
        drop_path_rate=0.2,
        # windowed attention (14x14) except in the last block of each interaction
        window_attn=[True, True, False] * 4,
        window_size=[14, 14, None] * 4,
        # the adapter
        conv_inplane=64,
        n_points=4,
        deform_num_heads=6,
        cffn_ratio=0.25,
        deform_ratio=1.0,
        interaction_indexes=[[0, 2], [3, 5], [6, 8], [9, 11]],
        # the original's four output norms are nn.SyncBatchNorm
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        pretrained='pretrained/dinov2_vits14_pretrain_14to16.pth'),
    neck=dict(in_channels=[384] * 4))
# layer-wise lr decay over the ViT's blocks (LayerDecayOptimizerConstructor): num_layers is the
# number of blocks (the constructor refuses another count), the rate is the original's
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.70))
