# ViT-Adapter-G on DINOv2 ViT-g/14 with registers, Mask R-CNN + FPN, 3x + multi-scale, COCO.
# No reference result: the DINOv2-G recipe with the reg4 ViT (unvalidated).
# The backbone file carries the backbone and its layer decay over the Mask R-CNN recipe (heads,
# data, schedule, runtime: one file each under configs/_base_/).
_base_ = '../_base_/models/vit-adapter_dinov2-reg4-g.py'
