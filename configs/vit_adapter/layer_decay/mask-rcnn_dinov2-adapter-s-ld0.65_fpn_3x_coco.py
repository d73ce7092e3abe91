# Layer-decay sweep for ViT-Adapter-S (DINOv2-S): layer_decay_rate = 0.65.
# Not in the original sweep, which notes that rates below 0.70 may do better still.
# Summarise finished runs with tools/analysis_tools/sweep_summary.py WORK_DIRS...
_base_ = '../mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py'

optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.65))
