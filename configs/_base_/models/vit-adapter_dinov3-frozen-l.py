# DINOv3 ViT-L/16 in DINOv3's own adapter mode (the official DINOv3_Adapter): the backbone and
# its (trivial) layer decay, nothing else.
# The ViT (the hub's dinov3_vitl16) is frozen, in eval mode and out of the optimizer, runs in
# bfloat16 on CUDA as the official module does, and is read (final-normed) at the blocks the
# official segmentation code uses; no injection. The extractors use activation checkpointing.
# Adapter settings are the official module's defaults. UNVALIDATED for detection: no COCO run.
# Weights: request access on facebookresearch/dinov3 (README, "Pretrained models"), put
# dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth into pretrained/ (or give an official DINOv3_Adapter
# state dict: it loads strictly).
#
# A detector config lists this file among its _base_ and hands the two dicts on:
#     model = dict(backbone=_base_.backbone, neck=dict(in_channels=[_base_.backbone.embed_dim] * 4))
#     optim_wrapper = dict(paramwise_cfg=_base_.layer_decay)
depth = 24
backbone = dict(
    type='DINOv3Adapter',
    embed_dim=1024,
    depth=depth,
    num_heads=16,
    mlp_ratio=4,
    rope_cfg=dict(base=100.0, normalize_coords='separate', rescale_coords=2.0),
    interaction_indexes=[4, 11, 17, 23],
    conv_inplane=64,
    n_points=4,
    deform_num_heads=16,
    drop_path_rate=0.3,
    cffn_ratio=0.25,
    deform_ratio=0.5,
    with_cp=True,
    vit_dtype='bfloat16',
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    pretrained='pretrained/dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth')
# the ViT is frozen (no group of its own): every trainable parameter keeps the base lr
layer_decay = dict(num_layers=depth, layer_decay_rate=1.0)
