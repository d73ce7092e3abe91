# DINOv3 ViT-L/16 in DINOv3's own adapter mode (the official DINOv3_Adapter): the ViT-S file with
# the hub's dinov3_vitl16 and the blocks the official segmentation code reads for L. Everything
# else, frozen ViT, bfloat16 on CUDA, activation checkpointing, adapter settings, is the S file's.
# UNVALIDATED for detection: no COCO run.
# Weights: request access on facebookresearch/dinov3 (README, "Pretrained models"), put
# dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth into pretrained/ (or give an official DINOv3_Adapter
# state dict: it loads strictly).
_base_ = './vit-adapter_dinov3-frozen-s.py'

model = dict(
    backbone=dict(arch='dinov3-l', pretrained='pretrained/dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth'),
    neck=dict(in_channels=[1024] * 4))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=24))
