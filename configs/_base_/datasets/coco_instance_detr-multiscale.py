# COCO instance segmentation with the DETR / Sparse R-CNN multi-scale training augmentation that the
# ViT-Adapter detection recipes use; testing at mmdet's 1333x800.
_base_ = 'mmdet::_base_/datasets/coco_instance.py'

# Flip, then either one multi-scale resize, or a resize, a random crop and a multi-scale resize;
# then crop to at most 1024x1024. mmdet 2.x's Resize(multiscale_mode='value', override=True) is
# RandomChoiceResize here (it resizes whatever image it gets), its AutoAugment is RandomChoice
# (one policy, uniformly).
# The multi-scale resize (both policies end with it) takes (short side, long side limit) scales:
# the short side is one of 480, 512, ..., 800, the long side <= 1333.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize',
                  scales=[(480 + 32 * i, 1333) for i in range(11)],
                  keep_ratio=True)],
            [
                dict(type='RandomChoiceResize',
                     scales=[(400, 1333), (500, 1333), (600, 1333)],
                     keep_ratio=True),
                dict(type='RandomCrop',
                     crop_type='absolute_range',
                     crop_size=(384, 600),
                     allow_negative_crop=True),
                dict(type='RandomChoiceResize',
                     scales=[(480 + 32 * i, 1333) for i in range(11)],
                     keep_ratio=True),
            ],
        ]),
    dict(type='RandomCrop',
         crop_type='absolute_range',
         crop_size=(1024, 1024),
         allow_negative_crop=True),
    dict(type='PackDetInputs'),
]
# `train_pipeline` is mmdet's name for the list (its base defines it too); it is read into
# train_dataloader here, so a config changes the pipeline in use through
# train_dataloader.dataset.pipeline (and may build it from _base_.train_pipeline).
# 2 images per GPU (8 GPUs in the recipes); the test pipeline (1333x800) is mmdet's.
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
