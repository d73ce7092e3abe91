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
        embed_dim=384,
        depth=12,
        num_heads=6,
        mlp_ratio=4,
        rope_cfg=dict(base=100.0, normalize_coords='separate', rescale_coords=2.0),
        interaction_indexes=[2, 5, 8, 11],
        conv_inplane=64,
        n_points=4,
        deform_num_heads=16,
        drop_path_rate=0.3,
        cffn_ratio=0.25,
        deform_ratio=0.5,
        with_cp=True,
        vit_dtype='bfloat16',
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        pretrained='pretrained/dinov3_vits16_pretrain_lvd1689m-08c60483.pth'),
    neck=dict(in_channels=[384] * 4))
# the ViT is frozen (no group of its own): every trainable parameter keeps the base lr
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12, layer_decay_rate=1.0))
