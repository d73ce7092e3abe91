# A tiny ViT-Adapter Mask R-CNN that trains on a 2-core CPU in minutes (`make demo`).
#
# The ViT-Adapter-S config's code path (ViTAdapter with spatial prior module and interaction blocks,
# FPN, Mask R-CNN heads, AdamW with layer-wise lr decay, CocoMetric), changed only in size: a narrow,
# shallow ViT trained from scratch (no DINOv2 weights), plain BN, narrow heads with fewer sampled
# RoIs (the stock 1024-wide FCs on 512 RoIs dominate CPU time), the generated shapes dataset
# (tools/misc/make_shapes_dataset.py) at 192x192, and a short schedule.
_base_ = '../vit_adapter/mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py'

img_size = 192  # the shapes dataset's image side; tools/quickstart.py generates it at this size
classes = ('circle', 'triangle', 'rectangle', 'star')
depth = 6
embed_dim = 128
fpn_channels = 64

model = dict(
    backbone=dict(
        pretrain_size=img_size,
        img_size=img_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=4,
        drop_path_rate=0.0,
        conv_inplane=32,
        deform_num_heads=4,
        interaction_indexes=[[0, 1], [2, 3], [4, 5]],
        # windowed attention (6x6 windows of the 12x12 patch grid) except in the last block of
        # each interaction, like the S config's pattern
        window_attn=[True, False] * 3,
        window_size=[6, None] * 3,
        pretrained=None,
        norm_cfg=dict(type='BN', requires_grad=True)),
    neck=dict(in_channels=[embed_dim] * 4, out_channels=fpn_channels),
    rpn_head=dict(
        in_channels=fpn_channels,
        feat_channels=fpn_channels,
        # anchors of 20, 40, 80, ... pixels for shapes 15..80 pixels across
        anchor_generator=dict(scales=[5])),
    roi_head=dict(
        # RoIAlign with one sample per bin: the adaptive grid (0) takes as many as a large early
        # proposal spans, and then its CPU backward costs about as much as the whole ViT. For these
        # 15-80 pixel shapes the adaptive grid is itself mostly 1x1. (2x2 cost 10-15 % of each
        # iteration, in mmcv's single-threaded CPU kernels.)
        bbox_roi_extractor=dict(out_channels=fpn_channels, roi_layer=dict(sampling_ratio=1)),
        bbox_head=dict(in_channels=fpn_channels, fc_out_channels=256, num_classes=len(classes)),
        mask_roi_extractor=dict(out_channels=fpn_channels, roi_layer=dict(sampling_ratio=1)),
        mask_head=dict(num_convs=2, in_channels=fpn_channels, conv_out_channels=64,
                       num_classes=len(classes))),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        # 64 RoIs an image, up to 16 positive (images hold 2-6 shapes)
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(max_per_img=30)))

data_root = 'data/shapes/'
shapes = dict(data_root=data_root, metainfo=dict(classes=classes))
# data loading is light next to the model: no worker processes on a 2-core machine
no_workers = dict(num_workers=0, persistent_workers=False)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='RandomFlip', prob=[0.25, 0.25, 0.25],
         direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# 4 images an iteration; tools/quickstart.py splits them over its training processes (2 x 2)
train_dataloader = dict(
    batch_size=4,
    **no_workers,
    dataset=dict(**shapes, ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    **no_workers,
    dataset=dict(**shapes, ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json', classwise=True)
test_evaluator = val_evaluator

# short schedule: linear warm-up, then cosine decay per iteration (AP and time: docs/benchmarks.md)
max_epochs = 20  # 1500 iterations of 4 images
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs,
         eta_min_ratio=0.01, convert_to_iter_based=True),
]
optim_wrapper = dict(
    # fused: one kernel for all of AdamW's updates (6 ms a step instead of 13 here), same math
    optimizer=dict(lr=2e-3, fused=True),
    clip_grad=dict(max_norm=5.0),
    # from scratch, the ViT blocks need nearly the full lr: a mild decay over 6 blocks
    paramwise_cfg=dict(num_layers=depth, layer_decay_rate=0.9))
auto_scale_lr = dict(base_batch_size=4)  # lr 2e-3 is for 4 images an iteration

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=1, max_keep_ckpts=1, save_last=True))
