# DINOv3's frozen adapter on DINOv3 ViT-S/16, Mask R-CNN + FPN, 3x + multi-scale, COCO.
# No reference result for detection (UNVALIDATED); the adapter is the official DINOv3_Adapter.
# The backbone file carries the backbone and its layer decay over the Mask R-CNN recipe (heads,
# data, schedule, runtime: one file each under configs/_base_/).
_base_ = '../_base_/models/vit-adapter_dinov3-frozen-s.py'
