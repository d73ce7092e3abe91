# ViT-Adapter-B on DINOv3 ViT-B/16, Mask R-CNN + FPN, 3x + multi-scale, COCO.
# No reference result: the DINOv2-B recipe with the DINOv3 ViT (unvalidated, see the backbone file).
# The backbone file carries the backbone and its layer decay over the Mask R-CNN recipe (heads,
# data, schedule, runtime: one file each under configs/_base_/).
_base_ = '../_base_/models/vit-adapter_dinov3-b.py'
