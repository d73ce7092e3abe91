# DINOv3 ViT-S/16 in ViT-Adapter-S (trainable ViT, injectors and extractors): the DINOv2-S
# backbone file with the ViT made the official hub's dinov3_vits16 (facebookresearch/dinov3
# hub/backbones.py): patch 16, RoPE (base 100, 'separate' coordinates, coordinate rescaling
# x[1/2, 2] in training only) instead of the absolute position embedding, class token + 4 storage
# tokens carried through the blocks, LayerScale, LayerNorm eps 1e-5, masked k bias. Windows keep
# global RoPE coordinates and see the class / storage tokens; the class / storage tokens are
# embeddings (layer 0) for layer decay.
# UNVALIDATED: the adapter, windows, drop path and layer decay are DINOv2-S's recipe carried over;
# no COCO run has checked them with DINOv3.
# Weights: request access on facebookresearch/dinov3 (README, "Pretrained models"), put
# dinov3_vits16_pretrain_lvd1689m-08c60483.pth into pretrained/; it loads as it is (no conversion).
_base_ = './vit-adapter_dinov2-s.py'

model = dict(backbone=dict(
    arch='dinov3-s', pretrained='pretrained/dinov3_vits16_pretrain_lvd1689m-08c60483.pth'))
