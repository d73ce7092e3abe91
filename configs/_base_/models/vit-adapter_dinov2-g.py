# DINOv2 ViT-g/14 in ViT-Adapter-g: the ViT-Adapter-L file with the g widths and depth (the
# adapter keeps the deform_ratio 0.5 of B and L).
# Not in the original (it released S/B/L only): the choices below extend the S/B/L recipe and are
# not validated by a COCO run.
# Weights: https://dl.fbaipublicfiles.com/dinov2/dinov2_vitg14/dinov2_vitg14_pretrain.pth into
# pretrained/, then `python tools/convert_14to16.py pretrained/dinov2_vitg14_pretrain.pth`.
_base_ = './vit-adapter_dinov2-l.py'

model = dict(
    backbone=dict(arch='dinov2-g',
                  with_cp=True,  # activation checkpointing: 1.1B ViT parameters at up to 1024x1024
                  pretrained='pretrained/dinov2_vitg14_pretrain_14to16.pth'),
    neck=dict(in_channels=[1536] * 4))
# layer_decay_rate 0.77: the rate that gives g (40 blocks) the lr profile over relative depth of
# the released L recipe (24 blocks, 0.65). Block i trains at rate ** (depth + 1 - (i + 1)) x lr;
# rate_g ** (40 + 1) = 0.65 ** (24 + 1) gives rate_g = 0.65 ** (25 / 41) = 0.769. The patch
# embedding then starts at the same 2.1e-5 x lr as in L and the middle block at 0.004 x lr
# (L: 0.0037); with 0.65 the lower half of g would barely move (0.65 ** 21 = 1e-4). The original
# notes that DINOv2 prefers low rates (S: 0.70 beat 0.75-0.95); a sweep around 0.77 is advised.
optim_wrapper = dict(paramwise_cfg=dict(num_layers=40, layer_decay_rate=0.77))
