# DINOv3 ViT-S/16 in DINOv3's own adapter mode (the official DINOv3_Adapter), in the recipe of the
# ViT-Adapter-S file: its backbone dict replaced whole (another class), with its FPN widths and its
# (trivial) layer decay.
# The ViT (the hub's dinov3_vits16) is frozen, in eval mode and out of the optimizer, runs in
# bfloat16 on CUDA as the official module does, and is read (final-normed) at the blocks the
# official segmentation code uses; no injection. The extractors use activation checkpointing.
# Adapter settings are the official module's defaults. UNVALIDATED for detection: no COCO run.
# Weights: request access on facebookresearch/dinov3 (README, "Pretrained models"), put
# dinov3_vits16_pretrain_lvd1689m-08c60483.pth into pretrained/ (or give an official DINOv3_Adapter
# state dict: it loads strictly).
_base_ = './vit-adapter_dinov2-s.py'

model = dict(
    backbone=dict(
        _delete_=True,  # none of the ViTAdapter keys applies to DINOv3Adapter
        type='DINOv3Adapter',
        arch='dinov3-s',  # the official adapter settings (mmdet_dinov2/models/backbones/archs.py)
        with_cp=True,
        vit_dtype='bfloat16',
        pretrained='pretrained/dinov3_vits16_pretrain_lvd1689m-08c60483.pth'),
    neck=dict(in_channels=[384] * 4))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12, layer_decay_rate=1.0))
