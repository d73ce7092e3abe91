# ViT-Adapter-L on DINOv2 ViT-L/14, Cascade Mask R-CNN + FPN, 3x + multi-scale, COCO.
# Not in the original (its Cascade configs are DeiT-S/B only) and not yet trained here: no result.
# The Mask R-CNN recipe of mask-rcnn_dinov2-adapter-l_fpn_3x_coco.py (backbone, layer decay, data,
# schedule, runtime) with the original's Cascade heads
# (_base_/models/cascade-mask-rcnn_vit-adapter_fpn.py).
_base_ = [
    '../_base_/models/cascade-mask-rcnn_vit-adapter_fpn.py',
    '../_base_/models/vit-adapter_dinov2-l.py',
    '../_base_/datasets/coco_instance_detr-multiscale.py',
    '../_base_/schedules/schedule_adamw-layer-decay_3x.py',
    '../_base_/default_runtime.py',
]

model = dict(backbone=_base_.backbone, neck=dict(in_channels=[_base_.backbone.embed_dim] * 4))
optim_wrapper = dict(paramwise_cfg=_base_.layer_decay)

# Normalised with the ImageNet mean/std in training and testing alike (the data preprocessor, as for
# S and B). The Mask R-CNN L config's 127.5 / 127.5 training normalisation is a quirk kept only to
# evaluate the original's released checkpoint as it was; nothing here needs it.
