# DINOv2 ViT-g/14 in ViT-Adapter-g: the backbone and its layer decay, nothing else.
# Not in the original (it released S/B/L only): the choices below extend the S/B/L recipe and are
# not validated by a COCO run.
# Weights: https://dl.fbaipublicfiles.com/dinov2/dinov2_vitg14/dinov2_vitg14_pretrain.pth into
# pretrained/, then `python tools/convert_14to16.py pretrained/dinov2_vitg14_pretrain.pth`.
#
# A detector config lists this file among its _base_ and hands the two dicts on:
#     model = dict(backbone=_base_.backbone, neck=dict(in_channels=[_base_.backbone.embed_dim] * 4))
#     optim_wrapper = dict(paramwise_cfg=_base_.layer_decay)
# (they are not set as model / optim_wrapper here: mmengine refuses a key that two files of one
# _base_ list both define, and the heads and schedule files define those). A config inheriting a
# detector config changes the backbone through model.backbone; `backbone` and `layer_decay` are read
# once, by the detector config.
depth = 40
backbone = dict(
    type='ViTAdapter',
    # the ViT: DINOv2's 518x518 (37x37 patches of 14) position grid, read as 37x37 of 16
    pretrain_size=592,
    img_size=592,
    patch_size=16,
    embed_dim=1536,
    depth=depth,
    num_heads=24,
    mlp_ratio=4,
    ffn_type='swiglu',  # DINOv2 ViT-g's fused SwiGLU FFN (hidden 4096)
    drop_path_rate=0.5,  # S 0.2, B 0.3, L 0.4: one more step for the next size
    # windowed attention (14x14) except in the last block of each interaction
    window_attn=([True] * 9 + [False]) * 4,
    window_size=([14] * 9 + [None]) * 4,
    # the adapter
    conv_inplane=64,
    n_points=4,
    deform_num_heads=24,
    cffn_ratio=0.25,
    deform_ratio=0.5,  # as B and L
    interaction_indexes=[[0, 9], [10, 19], [20, 29], [30, 39]],
    # the original's four output norms are nn.SyncBatchNorm
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    with_cp=True,  # activation checkpointing: 1.1B ViT parameters at up to 1024x1024
    pretrained='pretrained/dinov2_vitg14_pretrain_14to16.pth')
# layer_decay_rate 0.77: the rate that gives g (40 blocks) the lr profile over relative depth of
# the released L recipe (24 blocks, 0.65). Block i trains at rate ** (depth + 1 - (i + 1)) x lr;
# rate_g ** (40 + 1) = 0.65 ** (24 + 1) gives rate_g = 0.65 ** (25 / 41) = 0.769. The patch
# embedding then starts at the same 2.1e-5 x lr as in L and the middle block at 0.004 x lr
# (L: 0.0037); with 0.65 the lower half of g would barely move (0.65 ** 21 = 1e-4). The original
# notes that DINOv2 prefers low rates (S: 0.70 beat 0.75-0.95); a sweep around 0.77 is advised.
layer_decay = dict(num_layers=depth, layer_decay_rate=0.77)
