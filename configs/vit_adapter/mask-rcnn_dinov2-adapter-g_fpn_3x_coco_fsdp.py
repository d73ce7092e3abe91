# ViT-Adapter-g Mask R-CNN sharded over the GPUs (FSDP2) in bf16 with activation checkpointing:
# 1.2 B parameters whose fp32 weights, gradients and AdamW state (19 GB) no longer sit whole on
# every GPU. Same recipe and layer decay as the g config; memory plan: docs/sharding.md.
#   tools/dist_train.sh configs/vit_adapter/mask-rcnn_dinov2-adapter-g_fpn_3x_coco_fsdp.py 8
_base_ = './mask-rcnn_dinov2-adapter-g_fpn_3x_coco.py'

model = dict(backbone=dict(with_cp=True))
# a strategy makes tools/train.py build SafeFlexibleRunner, mmengine's FlexibleRunner with the
# SafeLoadRunner's checks (engine/launch.py)
strategy = dict(type='FSDP2Strategy', param_dtype='bf16')
optim_wrapper = dict(type='BF16OptimWrapper')
default_hooks = dict(bf16=dict(type='BF16Hook'))
val_cfg = dict(fp16=True)  # the loops' autocast; BF16Hook makes it bf16
test_cfg = dict(fp16=True)
