# DINOv2 ViT-B/14 in ViT-Adapter-B: the backbone and its layer decay, nothing else.
# Weights: https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth into
# pretrained/, then `python tools/convert_14to16.py pretrained/dinov2_vitb14_pretrain.pth`.
#
# A detector config lists this file among its _base_ and hands the two dicts on:
#     model = dict(backbone=_base_.backbone, neck=dict(in_channels=[_base_.backbone.embed_dim] * 4))
#     optim_wrapper = dict(paramwise_cfg=_base_.layer_decay)
# (they are not set as model / optim_wrapper here: mmengine refuses a key that two files of one
# _base_ list both define, and the heads and schedule files define those). A config inheriting a
# detector config changes the backbone through model.backbone; `backbone` and `layer_decay` are read
# once, by the detector config.
depth = 12
backbone = dict(
    type='ViTAdapter',
    # the ViT: DINOv2's 518x518 (37x37 patches of 14) position grid, read as 37x37 of 16
    pretrain_size=592,
    img_size=592,
    patch_size=16,
    embed_dim=768,
    depth=depth,
    num_heads=12,
    mlp_ratio=4,
    drop_path_rate=0.3,
    # windowed attention (14x14) except in the last block of each interaction
    window_attn=[True, True, False] * 4,
    window_size=[14, 14, None] * 4,
    # the adapter
    conv_inplane=64,
    n_points=4,
    deform_num_heads=12,
    cffn_ratio=0.25,
    deform_ratio=0.5,
    interaction_indexes=[[0, 2], [3, 5], [6, 8], [9, 11]],
    # the original's four output norms are nn.SyncBatchNorm
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    pretrained='pretrained/dinov2_vitb14_pretrain_14to16.pth')
# layer-wise lr decay over the ViT's blocks (LayerDecayOptimizerConstructor): the original's rate
layer_decay = dict(num_layers=depth, layer_decay_rate=0.60)
