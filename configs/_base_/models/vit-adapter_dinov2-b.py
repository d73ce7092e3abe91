# DINOv2 ViT-B/14 in ViT-Adapter-B: the ViT-Adapter-S file with the B widths and the original's B
# recipe (drop path 0.3, adapter deform_ratio 0.5, layer decay 0.60).
# Weights: https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth into
# pretrained/, then `python tools/convert_14to16.py pretrained/dinov2_vitb14_pretrain.pth`.
_base_ = './vit-adapter_dinov2-s.py'

model = dict(
    backbone=dict(arch='dinov2-b',
                  pretrained='pretrained/dinov2_vitb14_pretrain_14to16.pth'),
    neck=dict(in_channels=[768] * 4))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.60))
