# DINOv3 ViT-L/16 in DINOv3's own adapter mode (the official DINOv3_Adapter): the ViT-S file with
# the hub's dinov3_vitl16 and the blocks the official segmentation code reads for L. Everything
# else, frozen ViT, bfloat16 on CUDA, activation checkpointing, adapter settings, is the S file's.
# UNVALIDATED for detection: no COCO run.
# Weights: request access on facebookresearch/dinov3 (README, "Pretrained models"), put
# dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth into pretrained/ (or give an official DINOv3_Adapter
# state dict: it loads strictly).
#
# Used like vit-adapter_dinov3-frozen-s.py (its `backbone` and `layer_decay`).
_base_ = './vit-adapter_dinov3-frozen-s.py'
depth = 24
backbone = dict(
    embed_dim=1024,
    depth=depth,
    num_heads=16,
    interaction_indexes=[4, 11, 17, 23],
    pretrained='pretrained/dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth')
layer_decay = dict(num_layers=depth)
