# ViT-Adapter-S on DINOv3 ViT-S/16, Mask R-CNN + FPN, 3x + multi-scale, COCO.
# No reference result: the DINOv2-S recipe with the DINOv3 ViT (unvalidated, see the backbone file).
# The backbone file carries the backbone and its layer decay over the Mask R-CNN recipe (heads,
# data, schedule, runtime: one file each under configs/_base_/).
_base_ = '../_base_/models/vit-adapter_dinov3-s.py'
