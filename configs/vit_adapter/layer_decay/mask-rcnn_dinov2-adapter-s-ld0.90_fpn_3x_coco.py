# Layer-decay sweep for ViT-Adapter-S (DINOv2-S): layer_decay_rate = 0.90.
# Original box AP at this rate (ViT-Adapter-S, DINOv2-S, 3x + MS): 49.4.
# Summarise finished runs with tools/analysis_tools/sweep_summary.py WORK_DIRS...
_base_ = '../mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py'

optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.90))
