"""Every config under configs/ parses, builds its model at full size (on the meta device: no memory,
no weights) and its optimizer, and carries this project's runtime."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import mmdet_dinov2  # noqa: F401  (registers ViTAdapter, the constructor, the hooks)
from mmdet_dinov2.models.backbones.archs import expand_arch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

register_all_modules(init_default_scope=False)
ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.py')
                 if '_base_' not in p.parts)
RUNTIME = Config.fromfile(str(ROOT / 'configs' / '_base_' / 'default_runtime.py'))
DINO = 'configs/vit_adapter/dino-4scale_dinov2-adapter-s_12e_coco.py'
RESNET_EXAMPLE = 'configs/examples/mask-rcnn_r50_fpn_3x_coco.py'
OUR_HOOKS = ('checkpoint', 'non_finite_loss', 'reseed')


def build_on_meta(cfg):
    """The detector and its optimizer wrapper, without memory or pretrained weights."""
    if cfg.model.backbone.get('pretrained'):
        cfg.model.backbone.pretrained = None
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    with DefaultScope.overwrite_default_scope('mmdet'):
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, optim_wrapper


def test_every_kind_of_config_is_here():
    names = {Path(p).name for p in CONFIGS}
    for size in 'sbl':
        assert f'cascade-mask-rcnn_dinov2-adapter-{size}_fpn_3x_coco.py' in names
    assert {Path(DINO).name, Path(RESNET_EXAMPLE).name, 'mask-rcnn_my-backbone_fpn_3x_coco.py'} <= names


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds_at_full_size(path):
    cfg = Config.fromfile(str(ROOT / path))
    model, optim_wrapper = build_on_meta(cfg)
    trained = {id(p) for p in model.parameters() if p.requires_grad}
    in_groups = [id(p) for group in optim_wrapper.optimizer.param_groups for p in group['params']]
    assert sorted(in_groups) == sorted(trained)  # each trainable parameter in exactly one group
    assert optim_wrapper.optimizer.defaults['lr'] == cfg.optim_wrapper.optimizer.lr


@pytest.mark.parametrize('path', CONFIGS)
def test_config_keeps_the_runtime(path):
    cfg = Config.fromfile(str(ROOT / path))
    assert cfg.custom_imports == RUNTIME.custom_imports
    assert cfg.runner_type == 'SafeLoadRunner' and cfg.trust_checkpoint is False
    for key in OUR_HOOKS:
        assert cfg.default_hooks[key].type == RUNTIME.default_hooks[key].type, key


def test_dino_restates_the_runtime_exactly():
    """The DINO config inherits mmdet's DINO config, which carries mmdet's runtime, so it restates
    ours instead of inheriting it; this keeps the two from drifting apart."""
    cfg = Config.fromfile(str(ROOT / DINO))
    for key in ('custom_imports', 'custom_hooks', 'runner_type', 'trust_checkpoint', 'partial_load'):
        assert cfg[key] == RUNTIME[key], key
    for key in OUR_HOOKS:
        assert cfg.default_hooks[key] == RUNTIME.default_hooks[key], key


def test_dino_keeps_mmdet_dino_recipe_with_layer_decay():
    cfg = Config.fromfile(str(ROOT / DINO))
    assert cfg.model.type == 'DINO' and cfg.model.get('num_feature_levels', 4) == 4  # 4: DINO's default
    assert cfg.model.encoder.layer_cfg.self_attn_cfg.num_levels == 4
    assert cfg.model.backbone.type == 'ViTAdapter' and cfg.model.backbone.out_indices == (1, 2, 3)
    assert cfg.model.neck.type == 'ChannelMapper'
    assert (cfg.model.neck.in_channels, cfg.model.neck.num_outs) == ([384] * 3, 4)
    assert cfg.model.data_preprocessor.pad_size_divisor == 32
    # the backbone and layer decay of the S backbone file, stated again beside mmdet's DINO model
    s_file = Config.fromfile(str(ROOT / 'configs/_base_/models/vit-adapter_dinov2-s.py'))
    assert {k: v for k, v in cfg.model.backbone.items() if k != 'out_indices'} == s_file.model.backbone
    assert cfg.optim_wrapper.paramwise_cfg == s_file.optim_wrapper.paramwise_cfg
    ow = cfg.optim_wrapper
    assert ow.optimizer == dict(type='AdamW', lr=1e-4, weight_decay=1e-4)
    assert ow.clip_grad == dict(max_norm=0.1, norm_type=2)
    assert ow.constructor == 'LayerDecayOptimizerConstructor'
    assert ow.paramwise_cfg == dict(num_layers=12, layer_decay_rate=0.7)  # no custom_keys left
    assert cfg.train_cfg.max_epochs == 12
    [step] = cfg.param_scheduler
    assert (step.type, step.milestones, step.gamma) == ('MultiStepLR', [11], 0.1)
    assert cfg.find_unused_parameters is True
    assert cfg.train_dataloader.dataset.type == 'CheckedCocoDataset'


def test_dino_layer_decay_groups():
    """ViT blocks decay by depth; the adapter and everything outside the backbone (DINO's
    transformer, query embeddings, heads) train at the base lr."""
    model, optim_wrapper = build_on_meta(Config.fromfile(str(ROOT / DINO)))
    lr_of = {id(p): g['lr'] for g in optim_wrapper.optimizer.param_groups for p in g['params']}
    named = dict(model.named_parameters())
    assert lr_of[id(named['backbone.blocks.11.attn.qkv.weight'])] == pytest.approx(0.7e-4)
    assert lr_of[id(named['backbone.patch_embed.proj.weight'])] == pytest.approx(0.7 ** 13 * 1e-4)
    for name in ('backbone.spm.stem.0.weight', 'backbone.interactions.0.injector.gamma',
                 'level_embed', 'query_embedding.weight', 'neck.convs.0.conv.weight',
                 'bbox_head.cls_branches.0.weight', 'decoder.layers.0.ffn.layers.1.weight'):
        assert lr_of[id(named[name])] == 1e-4, name


@pytest.mark.parametrize('size, embed_dim', [('s', 384), ('b', 768), ('l', 1024)])
def test_cascade_follows_the_original_cascade_heads(size, embed_dim):
    cfg = Config.fromfile(str(ROOT / 'configs/vit_adapter' /
                              f'cascade-mask-rcnn_dinov2-adapter-{size}_fpn_3x_coco.py'))
    mask_rcnn = Config.fromfile(str(ROOT / f'configs/vit_adapter/mask-rcnn_dinov2-adapter-{size}_fpn_3x_coco.py'))
    assert cfg.model.type == 'CascadeRCNN' and cfg.model.roi_head.num_stages == 3
    stds = [head.bbox_coder.target_stds for head in cfg.model.roi_head.bbox_head]
    assert stds == [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]
    for head in cfg.model.roi_head.bbox_head:
        assert (head.type, head.num_shared_convs, head.num_shared_fcs) == ('ConvFCBBoxHead', 4, 1)
        assert head.norm_cfg.type == 'SyncBN' and head.loss_bbox == dict(type='GIoULoss', loss_weight=10.0)
        assert head.reg_decoded_bbox is True and head.reg_class_agnostic is False
    # the Mask R-CNN recipe otherwise (its backbone and layer decay stated again: mmengine cannot
    # combine the backbone file, which sets `model`, with other heads), except the L config's
    # normalisation quirk
    assert cfg.model.backbone == mask_rcnn.model.backbone
    assert cfg.model.neck.in_channels == [embed_dim] * 4
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'default_hooks', 'auto_scale_lr'):
        assert cfg[key] == mask_rcnn[key], key
    if size != 'l':
        assert cfg.train_dataloader == mask_rcnn.train_dataloader
    assert cfg.model.data_preprocessor.mean == [123.675, 116.28, 103.53]


def test_layer_decay_refuses_the_resnet_example_parameters():
    """Why the ResNet example switches constructors: the layer rule covers a ViT's names only."""
    cfg = Config.fromfile(str(ROOT / RESNET_EXAMPLE))
    s_config = ROOT / 'configs/vit_adapter/mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py'
    cfg.optim_wrapper = Config.fromfile(str(s_config)).optim_wrapper
    with pytest.raises(ValueError, match=r'fit no name of the layer rule.*backbone\.conv1\.weight'):
        build_on_meta(cfg)


def test_examples_swap_only_the_backbone():
    s = Config.fromfile(str(ROOT / 'configs/vit_adapter/mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py'))
    for path in ('configs/examples/mask-rcnn_my-backbone_fpn_3x_coco.py', RESNET_EXAMPLE):
        cfg = Config.fromfile(str(ROOT / path))
        for key in ('rpn_head', 'roi_head', 'train_cfg', 'test_cfg'):
            assert cfg.model[key] == s.model[key], (path, key)
        for key in ('train_dataloader', 'param_scheduler', 'train_cfg', 'default_hooks'):
            assert cfg[key] == s[key], (path, key)
        assert cfg.optim_wrapper.optimizer == s.optim_wrapper.optimizer
    tiny = Config.fromfile(str(ROOT / 'configs/examples/mask-rcnn_my-backbone_fpn_3x_coco.py'))
    assert (tiny.model.backbone.embed_dim, tiny.model.neck.in_channels) == (192, [192] * 4)
    # the S preset's windows, not restated in the example
    assert expand_arch(tiny.model.backbone)['window_attn'] == expand_arch(s.model.backbone)['window_attn']
    resnet = Config.fromfile(str(ROOT / RESNET_EXAMPLE))
    assert resnet.model.backbone.type == 'ResNet' and 'embed_dim' not in resnet.model.backbone
