# Mask R-CNN + FPN (mmdet's heads) for a ViT-Adapter: the four maps (strides 4, 8, 16, 32) feed an
# FPN of five levels (the fifth by max pooling). The backbone and the FPN's in_channels come from the
# backbone files (vit-adapter_*.py here), which inherit this one through vit-adapter_dinov2-s.py: a
# detector without a backbone fails to build, naming the missing type.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(_delete_=True),
    neck=dict(out_channels=256, num_outs=5))
