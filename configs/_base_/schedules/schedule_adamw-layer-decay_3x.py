# 36 epochs of AdamW with layer-wise lr decay: the ViT-Adapter recipe (the original's
# schedule_3x.py and its AdamW settings, written for mmengine).
#
# The layer decay (paramwise_cfg: num_layers, layer_decay_rate) belongs to the backbone: each
# backbone file (_base_/models/vit-adapter_*.py) sets optim_wrapper.paramwise_cfg. Without it the
# constructor stops, naming the missing keys.
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

# linear warm-up over 500 iterations from 0.001 x lr; lr x 0.1 after epochs 27 and 33.
# end=501: mmengine's LinearLR reaches full lr at iteration end - 1, mmcv 1.x's warm-up (the
# original's) at warmup_iters; with 501 both give lr x (0.001 + 0.999 * i / 500) at iteration i.
# The 36 epochs stand in train_cfg.max_epochs and at the end of the MultiStepLR: a config that
# trains longer or shorter sets both, and the milestones.
train_cfg = dict(max_epochs=36, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=501),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='LayerDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05))
# the lr above is for 8 GPUs x 2 images; --auto-scale-lr rescales it for another total batch
auto_scale_lr = dict(enable=False, base_batch_size=16)
