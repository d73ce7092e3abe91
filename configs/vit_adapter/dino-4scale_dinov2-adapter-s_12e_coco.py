# DINO (4 scales, mmdet's) on ViT-Adapter-S (DINOv2 ViT-S/14), 12 epochs, COCO detection.
# Not in the original and not yet trained here: no result (the README lists published DINO
# results of other backbones for comparison). mmdet's DINO-4scale R50 config with the R50 swapped
# for ViT-Adapter-S and its lr multiplier for layer decay; everything else is that config's: DINO's
# DETR-style multi-scale pipeline, AdamW lr 1e-4, weight decay 1e-4, gradient clipping at norm 0.1,
# 12 epochs with lr x 0.1 after epoch 11, 8 GPUs x 2 images.
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'

# Four scales as in mmdet's R50 DINO: the adapter's maps at strides 8, 16 and 32 take the place of
# the ResNet's, and the ChannelMapper adds the fourth level (a stride-2 conv on the last map: stride
# 64). The same levels and token count as the R50 config, so its published numbers compare like for
# like; the adapter's stride-4 map would triple the deformable encoder's tokens (that is
# mmdet's 5-scale Swin-L layout without its stride-64 level).
# The backbone of _base_/models/vit-adapter_dinov2-s.py, named again: that file sets `model` over the
# Mask R-CNN heads, and mmengine refuses two files that both set `model` in one _base_ list.
model = dict(
    # the adapter takes sides that are multiples of 32 (mmdet's DINO pads to 1)
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(
        _delete_=True,  # replace mmdet's ResNet-50 dict instead of merging into it
        type='ViTAdapter',
        arch='dinov2-s',  # mmdet_dinov2/models/backbones/archs.py
        pretrained='pretrained/dinov2_vits14_pretrain_14to16.pth',
        out_indices=(1, 2, 3)),
    neck=dict(in_channels=[384] * 3))
# The stride-4 branch (backbone.spm.fc1, backbone.up, backbone.norm1) is built but gets no gradient:
# DistributedDataParallel has to be told.
find_unused_parameters = True

# Layer decay in place of mmdet's paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}),
# which trains the whole pretrained R50 at 0.1 x lr. Here the pretrained ViT blocks train at
# 0.70 ** (13 - layer) x lr (0.7 for the last block down to 0.0097 for the patch embedding; 0.19 on
# average over the blocks), while the adapter, which starts from random weights like DINO's encoder
# and decoder, trains at the full lr. The constructor places every parameter outside the backbone
# (DINO's transformer, query embeddings, heads) at the full lr and refuses any backbone parameter
# that its layer rule does not cover. Its weight decay skips 1-D tensors and biases everywhere
# (mmdet's default constructor decays those too; at 1e-4 the difference is small).
optim_wrapper = dict(
    constructor='LayerDecayOptimizerConstructor',
    paramwise_cfg=dict(_delete_=True, num_layers=12, layer_decay_rate=0.70))

train_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader

# This project's runtime, restated from ../_base_/default_runtime.py: mmdet's DINO config already
# carries mmdet's runtime, and mmengine refuses a key that two files of one _base_ list both define.
# tests/configs/test_config_builds.py checks that the two agree.
custom_imports = dict(imports=['mmdet_dinov2'], allow_failed_imports=False)
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3, save_last=True),
    non_finite_loss=dict(type='NonFiniteLossHook'),
    reseed=dict(type='ReseedHook'))
custom_hooks = []
runner_type = 'SafeLoadRunner'
trust_checkpoint = False
partial_load = False
