# ViT-Adapter-L on a trainable DINOv3 ViT-L/16, sharded (FSDP2) in bf16 with activation
# checkpointing: the DINOv3-L recipe with the g config's sharding (docs/sharding.md).
#   tools/dist_train.sh configs/vit_adapter/mask-rcnn_dinov3-adapter-l_fpn_3x_coco_fsdp.py 8
_base_ = './mask-rcnn_dinov3-adapter-l_fpn_3x_coco.py'

model = dict(backbone=dict(with_cp=True))
strategy = dict(type='FSDP2Strategy', param_dtype='bf16')
optim_wrapper = dict(type='BF16OptimWrapper')
default_hooks = dict(bf16=dict(type='BF16Hook'))
val_cfg = dict(fp16=True)  # the loops' autocast; BF16Hook makes it bf16
test_cfg = dict(fp16=True)
