# Fine-tune the COCO ViT-Adapter-S Mask R-CNN on your own COCO-format dataset
# (docs/custom_dataset.md). One GPU:
#   python tools/train.py configs/custom/THIS_FILE.py --amp --auto-scale-lr
_base_ = '../vit_adapter/mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py'

classes = ('balloon', 'kite', 'umbrella')  # the category names of your annotation files
# annotations/{train,val}.json, train/, val/ (elsewhere: --cfg-options data_root=DIR)
data_root = 'data/custom/'

model = dict(
    # with_cp: recompute activations in the backward pass (less GPU memory, slower)
    backbone=dict(pretrained=None, with_cp=True),  # load_from holds the whole detector
    roi_head=dict(bbox_head=dict(num_classes=len(classes)),
                  mask_head=dict(num_classes=len(classes))))

custom_data = dict(data_root=data_root, metainfo=dict(classes=classes))
train_dataloader = dict(batch_size=2, dataset=dict(
    **custom_data, ann_file='annotations/train.json', data_prefix=dict(img='train/')))
val_dataloader = dict(dataset=dict(
    **custom_data, ann_file='annotations/val.json', data_prefix=dict(img='val/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator

# the original ViT-Adapter-S COCO detector (mmdet 2.x file, loads as it is); its 80-class predictors
# do not fit our classes: partial_load keeps them newly initialised and logs what did not load
load_from = ('https://huggingface.co/czczup/ViT-Adapter/resolve/main/'
             'mask_rcnn_dinov2_adapter_small_fpn_3x_coco.pth')
partial_load = True
# --auto-scale-lr: lr x (batch_size x GPUs) / 16, the base config's 8 GPUs x 2 images
