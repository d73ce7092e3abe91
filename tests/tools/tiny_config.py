# The ViT-Adapter-S config shrunk so that tools/train.py and tools/test.py run in seconds on a CPU:
# the same code path (ViTAdapter with interactions, FPN, Mask R-CNN, layer-decay AdamW, CocoMetric),
# tiny widths, 96-pixel images. The tools, checkpoints, datasets and engine tests share it; they
# set the data paths and the work dir with --cfg-options.
# `classes`: the CLASSES of tools/misc/make_shapes_dataset.py (tests/tools/test_tiny_config.py).
_base_ = '../../configs/vit_adapter/mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py'

embed_dim = 64
channels = 32
classes = ('circle', 'triangle', 'rectangle', 'star')
model = dict(
    backbone=dict(
        pretrain_size=64, img_size=64, embed_dim=embed_dim, depth=2, num_heads=2,
        drop_path_rate=0.0, conv_inplane=16, deform_num_heads=2,
        interaction_indexes=[[0, 0], [1, 1]], window_attn=[True, False], window_size=[4, None],
        pretrained=None),
    neck=dict(in_channels=[embed_dim] * 4, out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=64, num_classes=len(classes)),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(num_convs=1, in_channels=channels, conv_out_channels=channels,
                       num_classes=len(classes))),
    train_cfg=dict(rpn=dict(sampler=dict(num=64)), rpn_proposal=dict(nms_pre=300, max_per_img=100),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=300), rcnn=dict(score_thr=0.0, max_per_img=100)))

data_root = 'data/shapes/'
metainfo = dict(classes=classes)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
# the base test pipeline, at the images' own 96 pixels instead of 1333x800
test_pipeline = [{**t, 'scale': (96, 96)} if t['type'] == 'Resize' else t
                 for t in _base_.test_pipeline]
# serialize_data=False saves a gc.collect() per dataset (seconds in a long test process)
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                 pipeline=train_pipeline, serialize_data=False))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
                 pipeline=test_pipeline, serialize_data=False))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

max_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4)]
optim_wrapper = dict(optimizer=dict(lr=1e-3),
                     paramwise_cfg=dict(num_layers=2, layer_decay_rate=0.7))
randomness = dict(seed=0)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=2))
log_processor = dict(window_size=1)
