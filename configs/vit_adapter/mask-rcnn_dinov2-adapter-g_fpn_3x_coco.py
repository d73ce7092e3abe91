# ViT-Adapter-g on DINOv2 ViT-g/14, Mask R-CNN + FPN, 3x + multi-scale, COCO.
# Not in the original (it released S/B/L only): no reference result.
# The backbone file carries the backbone and its layer decay over the Mask R-CNN recipe (heads,
# data, schedule, runtime: one file each under configs/_base_/).
_base_ = '../_base_/models/vit-adapter_dinov2-g.py'
