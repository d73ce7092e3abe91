# ViT-Adapter-S on DINOv2 ViT-S/14, Mask R-CNN + FPN, 3x + multi-scale, COCO.
# Original result (mmdet 2.22, 8 GPUs x 2 images): 51.5 box AP, 45.6 mask AP.
# The backbone file carries the backbone and its layer decay over the Mask R-CNN recipe (heads,
# data, schedule, runtime: one file each under configs/_base_/).
_base_ = '../_base_/models/vit-adapter_dinov2-s.py'
