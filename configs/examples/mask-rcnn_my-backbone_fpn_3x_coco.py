# Example: a new backbone in one file. This config inherits the ViT-Adapter-S Mask R-CNN config
# (heads, DETR-style multi-scale COCO, 3x AdamW with layer decay, runtime) and swaps in a ViT-Adapter
# of another size: here the widths of the original ViT-Adapter-T (DeiT-T: 192 wide, 12 blocks of 3
# heads). Train it like any config:
#     python tools/train.py configs/examples/mask-rcnn_my-backbone_fpn_3x_coco.py
#
# What a new backbone has to state, and nothing else:
#   1. model.backbone: the keys that differ from the inherited ViT-Adapter-S dict (they merge into
#      it, so pretrain_size, patch_size, mlp_ratio, conv_inplane, n_points, cffn_ratio, norm_cfg
#      stay S's). With _delete_=True the dict would replace S's instead, and must then be complete.
#   2. model.neck.in_channels: one width per backbone map (the adapter gives 4 maps of embed_dim);
#      SafeLoadRunner checks this before building and names both keys if they disagree.
#   3. optim_wrapper.paramwise_cfg: num_layers = the number of ViT blocks (the layer-decay
#      constructor refuses another count) and a layer_decay_rate for them.
# For a backbone you will reuse, write the same keys as a _base_/models/vit-adapter_*.py file that
# inherits vit-adapter_dinov2-s.py (or the nearest sibling), as the other backbone files there do.
_base_ = '../vit_adapter/mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py'

model = dict(
    backbone=dict(
        embed_dim=192,
        depth=12,
        num_heads=3,
        drop_path_rate=0.1,
        deform_num_heads=6,  # the adapter's heads: 192 / 6 = 32 channels each, as in the original T
        # the ViT checkpoint to start from (None: random weights). The loader converts official
        # DINOv2 and original ViT-Adapter files; pretrain_size must match the file's position grid
        # (in pixels of 16: 592 for DINOv2's 37x37).
        pretrained=None),
    neck=dict(in_channels=[192] * 4))
# the original T recipe had no layer decay; 0.9 decays gently over 12 blocks
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.9))
