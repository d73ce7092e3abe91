# DINOv2 ViT-L/14 in ViT-Adapter-L: the ViT-Adapter-B file with the L widths and depth and the
# original's L recipe (drop path 0.4, layer decay 0.65; deform_ratio 0.5 as B).
# Weights: https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth into
# pretrained/, then `python tools/convert_14to16.py pretrained/dinov2_vitl14_pretrain.pth`.
_base_ = './vit-adapter_dinov2-b.py'

model = dict(
    backbone=dict(arch='dinov2-l',
                  pretrained='pretrained/dinov2_vitl14_pretrain_14to16.pth'),
    neck=dict(in_channels=[1024] * 4))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=24, layer_decay_rate=0.65))
