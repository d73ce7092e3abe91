# Mask R-CNN + FPN on a DINOv2 ViT-Adapter, COCO, 3x schedule with DETR-style multi-scale training.
#
# The recipe of the original ViT-Adapter DINOv2 configs (czczup/ViT-Adapter,
# detection/configs/mask_rcnn/dinov2/*.py on mmdet 2.22), written for mmdet 3.x. A size config
# sets the ViT widths (embed_dim, depth, num_heads, window pattern), the FPN inputs and the
# layer decay; everything shared lives here.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmdet_dinov2'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='ViTAdapter',
        # the ViT: DINOv2's 518x518 (37x37 patches of 14) position grid, read as 37x37 of 16
        pretrain_size=592,
        img_size=592,
        patch_size=16,
        mlp_ratio=4,
        # the adapter
        conv_inplane=64,
        n_points=4,
        cffn_ratio=0.25,
        # the original's four output norms are nn.SyncBatchNorm
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    neck=dict(out_channels=256, num_outs=5))

# Augmentation from DETR / Sparse R-CNN: flip, then either one multi-scale resize, or a resize,
# a random crop and a multi-scale resize; then crop to at most 1024x1024. mmdet 2.x's
# Resize(multiscale_mode='value', override=True) is RandomChoiceResize here (it resizes whatever
# image it gets), its AutoAugment is RandomChoice (one policy, uniformly).
# (short side, long side limit): the short side is one of 480, 512, ..., 800; the long side <= 1333
multiscale = [(480 + 32 * i, 1333) for i in range(11)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=multiscale, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize',
                     scales=[(400, 1333), (500, 1333), (600, 1333)],
                     keep_ratio=True),
                dict(type='RandomCrop',
                     crop_type='absolute_range',
                     crop_size=(384, 600),
                     allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=multiscale, keep_ratio=True),
            ],
        ]),
    dict(type='RandomCrop',
         crop_type='absolute_range',
         crop_size=(1024, 1024),
         allow_negative_crop=True),
    dict(type='PackDetInputs'),
]
# 2 images per GPU, 8 GPUs (auto_scale_lr below); the test pipeline (1333x800) is mmdet's.
train_dataloader = dict(batch_size=2, num_workers=2, dataset=dict(pipeline=train_pipeline))

# 36 epochs; linear warm-up over 500 iterations from 0.001 x lr; lr x 0.1 after epochs 27 and 33.
# end=501: mmengine's LinearLR reaches full lr at iteration end - 1, mmcv 1.x's warm-up (the
# original's) at warmup_iters; with 501 both give lr x (0.001 + 0.999 * i / 500) at iteration i.
max_epochs = 36
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=501),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33],
         gamma=0.1),
]

# AdamW with layer-wise lr decay; a size config sets num_layers and layer_decay_rate.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='LayerDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.7))
auto_scale_lr = dict(enable=False, base_batch_size=16)

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_last=True))
