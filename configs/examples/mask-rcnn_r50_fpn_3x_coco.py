# Example: the same heads, data and schedule on a backbone that is not a ViT-Adapter: mmdet's
# ResNet-50 (ImageNet weights from torchvision), inheriting the ViT-Adapter-S Mask R-CNN config.
# It shows that the heads, the DETR-style multi-scale data and the 3x AdamW schedule do not depend on
# the backbone. Not a tuned recipe: mmdet's own R50 Mask R-CNN 3x configs train with SGD.
_base_ = '../vit_adapter/mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py'

model = dict(
    backbone=dict(
        _delete_=True,  # replace the ViT-Adapter dict instead of merging into it
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    # ResNet-50's four stages are 256, 512, 1024 and 2048 wide (strides 4 to 32, as the adapter's)
    neck=dict(in_channels=[256, 512, 1024, 2048]))

# The layer-decay constructor knows a ViT's layers only: it refuses a ResNet's parameters, naming
# them (backbone.conv1.weight, backbone.layer1.0.conv1.weight, ...). mmengine's default constructor
# takes its place; the optimizer (AdamW, lr 1e-4, weight decay 0.05) and the lr schedule stay the
# inherited ones. No weight decay on norms and biases, as the layer-decay constructor does.
optim_wrapper = dict(
    constructor='DefaultOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.0, bias_decay_mult=0.0))
