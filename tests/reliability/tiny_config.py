# The ViT-Adapter-S config shrunk for tests: same code path (ViTAdapter with interactions, FPN, Mask
# R-CNN, layer-decay AdamW, the base config's hooks and dataset class), tiny widths and images.
# Tests set data_root / work_dir with cfg_options.
_base_ = '../../configs/vit_adapter/mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py'

embed_dim = 64
channels = 32
classes = ('a', 'b')
model = dict(
    backbone=dict(
        pretrain_size=64, img_size=64, embed_dim=embed_dim, depth=2, num_heads=2,
        drop_path_rate=0.1, conv_inplane=16, deform_num_heads=2,
        interaction_indexes=[[0, 0], [1, 1]], window_attn=[True, False], window_size=[4, None],
        pretrained=None, norm_cfg=dict(type='BN', requires_grad=True)),
    neck=dict(in_channels=[embed_dim] * 4, out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=64, num_classes=len(classes)),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(num_convs=1, in_channels=channels, conv_out_channels=channels,
                       num_classes=len(classes))),
    train_cfg=dict(rpn=dict(sampler=dict(num=32)), rpn_proposal=dict(nms_pre=200, max_per_img=50),
                   rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50), rcnn=dict(max_per_img=20)))

data_root = 'data/tiny/'
metainfo = dict(classes=classes)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(type='CheckedCocoDataset',  # TODO(D): from the base config once B has finished
                 data_root=data_root, metainfo=metainfo, ann_file='annotations/train.json',
                 data_prefix=dict(img='train/'), pipeline=train_pipeline,
                 serialize_data=False))  # saves a gc.collect() (seconds in a test process)
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(type='CheckedCocoDataset',
                 data_root=data_root, metainfo=metainfo, ann_file='annotations/val.json',
                 data_prefix=dict(img='val/'), pipeline=test_pipeline, serialize_data=False))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator

max_epochs = 3
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4)]
optim_wrapper = dict(paramwise_cfg=dict(num_layers=2, layer_decay_rate=0.9))
randomness = dict(seed=0)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2))
custom_hooks = [dict(type='CheckpointTrustHook'), dict(type='NonFiniteLossHook'),
                dict(type='ReseedHook')]
log_processor = dict(window_size=1)

