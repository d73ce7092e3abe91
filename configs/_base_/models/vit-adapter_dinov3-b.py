# DINOv3 ViT-B/16 in ViT-Adapter-B (trainable ViT, injectors and extractors): the backbone
# and its layer decay, nothing else.
# The ViT is the official hub's dinov3_vitb16 (facebookresearch/dinov3 hub/backbones.py): patch 16,
# RoPE (base 100, 'separate' coordinates, coordinate rescaling x[1/2, 2] in training only), class
# token + 4 storage tokens carried through the blocks, LayerScale, LayerNorm eps 1e-5, masked k bias.
# UNVALIDATED: the adapter, windows, drop path and layer decay are DINOv2-B's recipe carried over;
# no COCO run has checked them with DINOv3.
# Weights: request access on facebookresearch/dinov3 (README, "Pretrained models"), put
# dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth into pretrained/; it loads as it is (no conversion).
#
# A detector config lists this file among its _base_ and hands the two dicts on:
#     model = dict(backbone=_base_.backbone, neck=dict(in_channels=[_base_.backbone.embed_dim] * 4))
#     optim_wrapper = dict(paramwise_cfg=_base_.layer_decay)
depth = 12
backbone = dict(
    type='ViTAdapter',
    patch_size=16,
    embed_dim=768,
    depth=depth,
    num_heads=12,
    mlp_ratio=4,
    drop_path_rate=0.3,
    # DINOv3's ViT
    pos_embed_type='rope',
    rope_cfg=dict(base=100.0, normalize_coords='separate', rescale_coords=2.0),
    with_cls_token=True,
    num_register_tokens=4,
    final_norm=True,
    norm_eps=1e-5,
    mask_k_bias=True,
    # windowed attention (14x14) except in the last block of each interaction; windows keep global
    # RoPE coordinates and see the class / storage tokens
    window_attn=[True, True, False] * 4,
    window_size=[14, 14, None] * 4,
    # the adapter
    conv_inplane=64,
    n_points=4,
    deform_num_heads=12,
    cffn_ratio=0.25,
    deform_ratio=0.5,
    interaction_indexes=[[0, 2], [3, 5], [6, 8], [9, 11]],
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    pretrained='pretrained/dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth')
# layer-wise lr decay over the ViT's blocks; the class / storage tokens are embeddings (layer 0)
layer_decay = dict(num_layers=depth, layer_decay_rate=0.6)
