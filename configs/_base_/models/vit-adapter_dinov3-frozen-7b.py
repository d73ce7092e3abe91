# DINOv3 ViT-7B/16 in DINOv3's own adapter mode (the official DINOv3_Adapter): the ViT-S file with
# the hub's dinov3_vit7b16 (no qkv bias, SwiGLU with 64-aligned hidden width, MLP ratio 3) and the
# blocks the official segmentation code reads for 7B. Everything else, frozen ViT, bfloat16 on CUDA,
# activation checkpointing, adapter settings, is the S file's. UNVALIDATED for detection: no COCO run.
# Weights: request access on facebookresearch/dinov3 (README, "Pretrained models"), put
# dinov3_vit7b16_pretrain_lvd1689m-a955f4ea.pth into pretrained/ (or give an official DINOv3_Adapter
# state dict: it loads strictly).
_base_ = './vit-adapter_dinov3-frozen-s.py'

model = dict(
    backbone=dict(arch='dinov3-7b', pretrained='pretrained/dinov3_vit7b16_pretrain_lvd1689m-a955f4ea.pth'),
    neck=dict(in_channels=[4096] * 4))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=40))
