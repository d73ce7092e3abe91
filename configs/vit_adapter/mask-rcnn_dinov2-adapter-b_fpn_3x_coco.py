# ViT-Adapter-B on DINOv2 ViT-B/14, Mask R-CNN + FPN, 3x + multi-scale, COCO.
# Original result (mmdet 2.22, 8 GPUs x 2 images): 54.1 box AP, 47.8 mask AP.
# The backbone file carries the backbone and its layer decay over the Mask R-CNN recipe (heads,
# data, schedule, runtime: one file each under configs/_base_/).
_base_ = '../_base_/models/vit-adapter_dinov2-b.py'
