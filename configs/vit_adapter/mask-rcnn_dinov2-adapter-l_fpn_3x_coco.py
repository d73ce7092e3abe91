# ViT-Adapter-L on DINOv2 ViT-L/14, Mask R-CNN + FPN, 3x + multi-scale, COCO.
# Original result (mmdet 2.22, 8 GPUs x 2 images): 55.3 box AP, 49.0 mask AP.
# The backbone file carries the backbone and its layer decay over the Mask R-CNN recipe (heads,
# data, schedule, runtime: one file each under configs/_base_/).
_base_ = '../_base_/models/vit-adapter_dinov2-l.py'

# Normalisation is done in the pipelines below (see there), not here.
model = dict(data_preprocessor=dict(mean=None, std=None, bgr_to_rgb=False))

# A quirk of the original L config, kept so that its released checkpoint is evaluated as it was (in
# this config only: the other L-sized configs inherit the backbone file, not this one): it set
# img_norm_cfg = mean 127.5, std 127.5 for its TRAIN pipeline only. Its validation and
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
