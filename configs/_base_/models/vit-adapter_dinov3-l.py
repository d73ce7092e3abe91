# DINOv3 ViT-L/16 in ViT-Adapter-L (trainable ViT, injectors and extractors): the DINOv2-L
# backbone file with the ViT made the official hub's dinov3_vitl16 (facebookresearch/dinov3
# hub/backbones.py): patch 16, RoPE (base 100, 'separate' coordinates, coordinate rescaling
# x[1/2, 2] in training only) instead of the absolute position embedding, class token + 4 storage
# tokens carried through the blocks, LayerScale, LayerNorm eps 1e-5, masked k bias. Windows keep
# global RoPE coordinates and see the class / storage tokens; the class / storage tokens are
# embeddings (layer 0) for layer decay.
# UNVALIDATED: the adapter, windows, drop path and layer decay are DINOv2-L's recipe carried over;
# no COCO run has checked them with DINOv3.
# Weights: request access on facebookresearch/dinov3 (README, "Pretrained models"), put
# dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth into pretrained/; it loads as it is (no conversion).
_base_ = './vit-adapter_dinov2-l.py'

model = dict(backbone=dict(
    arch='dinov3-l', pretrained='pretrained/dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth'))
