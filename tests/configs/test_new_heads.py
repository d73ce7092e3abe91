"""Cascade Mask R-CNN and DINO on ViT-Adapter-S: one training step (the configs' own optimizer,
layer decay included) and one inference on the CPU, with the configs shrunk to tiny widths."""
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import mmdet_dinov2  # noqa: F401  (registers ViTAdapter and the constructor)
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmdet.utils import register_all_modules

register_all_modules(init_default_scope=False)
ROOT = Path(__file__).resolve().parents[2]
CASCADE = ROOT / 'configs' / 'vit_adapter' / 'cascade-mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py'
DINO = ROOT / 'configs' / 'vit_adapter' / 'dino-4scale_dinov2-adapter-s_12e_coco.py'
NUM_CLASSES = 4
CH = 32  # neck and head width
# ViT-Adapter-S's code path at dim 64 with two blocks (tests/tools/tiny_config.py's backbone)
TINY_BACKBONE = dict(pretrain_size=64, img_size=64, embed_dim=64, depth=2, num_heads=2,
                     drop_path_rate=0.0, conv_inplane=16, deform_num_heads=2,
                     interaction_indexes=[[0, 0], [1, 1]], window_attn=[True, False],
                     window_size=[4, None], pretrained=None)
IMAGES = [(3, 64, 96), (3, 96, 64)]  # sides: multiples of 32, as the adapter takes


def _tiny_cascade():
    cfg = Config.fromfile(str(CASCADE))
    m = cfg.model
    m.backbone.update(TINY_BACKBONE)
    m.neck.update(in_channels=[64] * 4, out_channels=CH)
    m.rpn_head.update(in_channels=CH, feat_channels=CH)
    for extractor in (m.roi_head.bbox_roi_extractor, m.roi_head.mask_roi_extractor):
        extractor.out_channels = CH
    for head in m.roi_head.bbox_head:
        head.update(in_channels=CH, conv_out_channels=CH, fc_out_channels=64, num_classes=NUM_CLASSES)
    m.roi_head.mask_head.update(num_convs=1, in_channels=CH, conv_out_channels=CH, num_classes=NUM_CLASSES)
    m.train_cfg.rpn.sampler.num = 64
    m.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
    for stage in m.train_cfg.rcnn:
        stage.sampler.num = 32
    m.test_cfg.rpn.update(nms_pre=200, max_per_img=100)
    m.test_cfg.rcnn.score_thr = 0.0
    cfg.optim_wrapper.paramwise_cfg.num_layers = 2
    return cfg


def _tiny_dino():
    cfg = Config.fromfile(str(DINO))
    m = cfg.model
    m.backbone.update(TINY_BACKBONE)
    m.neck.update(in_channels=[64] * 3, out_channels=CH, norm_cfg=dict(type='GN', num_groups=8))
    m.num_queries = 20
    m.encoder.update(num_layers=1)
    m.encoder.layer_cfg.self_attn_cfg.update(embed_dims=CH, num_heads=4)
    m.encoder.layer_cfg.ffn_cfg.update(embed_dims=CH, feedforward_channels=64)
    m.decoder.update(num_layers=2)
    m.decoder.layer_cfg.self_attn_cfg.update(embed_dims=CH, num_heads=4)
    m.decoder.layer_cfg.cross_attn_cfg.update(embed_dims=CH, num_heads=4)
    m.decoder.layer_cfg.ffn_cfg.update(embed_dims=CH, feedforward_channels=64)
    m.positional_encoding.num_feats = CH // 2
    m.bbox_head.update(num_classes=NUM_CLASSES, embed_dims=CH)
    m.dn_cfg.group_cfg.num_dn_queries = 10
    m.test_cfg.max_per_img = 20
    cfg.optim_wrapper.paramwise_cfg.num_layers = 2
    return cfg


def _train_and_predict(cfg, with_mask):
    torch.manual_seed(0)
    np.random.seed(0)  # demo_mm_inputs draws boxes with numpy
    model = MODELS.build(cfg.model)
    model.init_weights()  # as the runner does (DINO's level_embed is uninitialised memory before)
    with DefaultScope.overwrite_default_scope('mmdet'):
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    # a gradient reaches the last ViT block and the adapter's stem (a step may still leave a tiny
    # one invisible: DINO clips the whole gradient to norm 0.1, and Adam's eps then dominates)
    reached = set()
    for name, p in model.named_parameters():
        if name in ('backbone.blocks.1.attn.qkv.weight', 'backbone.spm.stem.0.weight'):
            p.register_post_accumulate_grad_hook(
                lambda p, name=name: reached.add(name) if p.grad.abs().sum() > 0 else None)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    model.train()
    data = demo_mm_inputs(batch_size=2, image_shapes=IMAGES, num_items=[3, 2],
                          num_classes=NUM_CLASSES, with_mask=with_mask)
    losses = model.train_step(data, optim_wrapper)
    assert losses and all(torch.isfinite(v).all() for v in losses.values()), losses
    assert reached == {'backbone.blocks.1.attn.qkv.weight', 'backbone.spm.stem.0.weight'}
    moved = [name for name, p in model.named_parameters() if not torch.equal(before[name], p)]
    assert any(name.startswith('backbone.') for name in moved)
    assert any(not name.startswith(('backbone.', 'neck.')) for name in moved)

    model.eval()
    with torch.no_grad():
        preds = model.test_step(demo_mm_inputs(batch_size=1, image_shapes=IMAGES[:1],
                                               num_classes=NUM_CLASSES, with_mask=with_mask))
    inst = preds[0].pred_instances
    assert len(inst) > 0 and inst.bboxes.shape[1] == 4
    assert np.all(np.isfinite(inst.bboxes.numpy())) and int(inst.labels.max()) < NUM_CLASSES
    return losses, preds[0]


def test_cascade_mask_rcnn_trains_one_step_and_predicts():
    losses, pred = _train_and_predict(_tiny_cascade(), with_mask=True)
    for stage in range(3):  # every stage trains its box and mask heads
        for name in ('loss_cls', 'loss_bbox', 'loss_mask'):
            assert f's{stage}.{name}' in losses, (stage, name)
    assert pred.pred_instances.masks.shape[1:] == pred.ori_shape


def test_dino_trains_one_step_and_predicts():
    losses, pred = _train_and_predict(_tiny_dino(), with_mask=False)
    for name in ('loss_cls', 'loss_bbox', 'loss_iou', 'dn_loss_cls', 'enc_loss_cls'):
        assert name in losses, name
    assert 'masks' not in pred.pred_instances


def test_dino_leaves_exactly_the_stride_4_branch_without_gradient():
    """Why the DINO config sets find_unused_parameters: out_indices=(1, 2, 3) drops the stride-4 map,
    and only the parameters that make it get no gradient."""
    cfg = _tiny_dino()
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(demo_mm_inputs(batch_size=2, image_shapes=IMAGES, num_items=[3, 2],
                                                  num_classes=NUM_CLASSES), True)
    losses = model(**data, mode='loss')
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    unused = {name.rsplit('.', 1)[0] for name, p in model.named_parameters() if p.grad is None}
    assert unused == {'backbone.spm.fc1', 'backbone.up', 'backbone.norm1'}
    assert cfg.find_unused_parameters is True
