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
# other mmdet bases, name their backbone's arch themselves.
_base_ = [
    './mask-rcnn_vit-adapter_fpn.py',
    '../datasets/coco_instance_detr-multiscale.py',
    '../schedules/schedule_adamw-layer-decay_3x.py',
    '../default_runtime.py',
]

model = dict(
    # the original's ViT-Adapter-S recipe on DINOv2 ViT-S/14 (mmdet_dinov2/models/backbones/archs.py)
    backbone=dict(type='ViTAdapter', arch='dinov2-s',
                  pretrained='pretrained/dinov2_vits14_pretrain_14to16.pth'),
    neck=dict(in_channels=[384] * 4))
# layer-wise lr decay over the ViT's blocks (LayerDecayOptimizerConstructor): num_layers is the
# number of blocks (the constructor refuses another count), the rate is the original's
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.70))
