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
# CheckedCocoDataset (mmdet_dinov2.datasets) checks the annotation file before training: it clips
# boxes reaching outside their image, drops degenerate ones with a warning, and refuses missing
# images, unknown category ids or sizes that disagree with the files, listing every problem.
# Images without annotations are trained on as negatives (filter_empty_gt=False). The original
# (mmdet 2.x CocoDataset) dropped them: COCO train2017 has 1,021 such images of 118,287; set
# train_dataloader.dataset.filter_cfg.filter_empty_gt=True to reproduce that exactly.
train_dataloader = dict(
    batch_size=2, num_workers=2,
    dataset=dict(type='CheckedCocoDataset', pipeline=train_pipeline,
                 filter_cfg=dict(filter_empty_gt=False)))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader

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

# AtomicCheckpointHook: mmengine's CheckpointHook whose saves survive a kill or a full disk (the
# previous checkpoint and the last_checkpoint pointer stay valid). NonFiniteLossHook stops at the
# first NaN/inf loss term, naming it and the last good checkpoint; ReseedHook makes --resume
# repeat an uninterrupted run exactly.
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3, save_last=True))
custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='ReseedHook')]
# SafeLoadRunner (mmdet_dinov2.engine.runner): checkpoints are read weights-only, and a file whose
# pickle needs more (code could run) is refused unless trust_checkpoint is True (the tools'
# --trust-checkpoint sets it): only for files you trust. It checks what it loads (shapes, missing
# parts, NaN) and locks the work dir while training.
runner_type = 'SafeLoadRunner'
trust_checkpoint = False
