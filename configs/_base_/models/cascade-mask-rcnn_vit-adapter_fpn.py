# Cascade Mask R-CNN + FPN (mmdet's) for a ViT-Adapter, with the box heads of the original
# ViT-Adapter's Cascade configs (detection/configs/cascade_rcnn/cascade_mask_rcnn_deit_adapter_*):
# each of the three stages is a "4conv1fc" head (four 3x3 convs with SyncBN, one 1024-wide fc),
# regresses one box per class, and is trained with GIoU on the decoded boxes (weight 10) instead
# of smooth L1 on the deltas. Everything else (RPN, IoU thresholds 0.5 / 0.6 / 0.7, stage weights
# 1 / 0.5 / 0.25, target stds, mask head) is mmdet's. The backbone, the FPN's in_channels and the
# layer decay come from the Cascade detector configs (configs/vit_adapter/cascade-mask-rcnn_*.py).
_base_ = 'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(_delete_=True),
    neck=dict(out_channels=256, num_outs=5),
    roi_head=dict(bbox_head=[
        dict(stage,
             type='ConvFCBBoxHead',
             num_shared_convs=4,
             num_shared_fcs=1,
             conv_out_channels=256,
             norm_cfg=dict(type='SyncBN', requires_grad=True),
             reg_class_agnostic=False,
             reg_decoded_bbox=True,
             loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
        for stage in _base_.model.roi_head.bbox_head
    ]))
