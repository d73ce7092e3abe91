# The tools tests' tiny config (tests/tools/tiny_config.py: the ViT-Adapter-S config shrunk to
# dim 64, depth 2, tiny heads, on the base config's hooks and dataset class), evaluated at 96
# pixels instead of mmdet's 1333x800. Tests set data_root and work_dir with cfg options.
_base_ = '../tools/tiny_config.py'

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# serialize_data=False saves a gc.collect() per dataset (seconds in a long test process)
train_dataloader = dict(dataset=dict(serialize_data=False))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline, serialize_data=False))
test_dataloader = val_dataloader
