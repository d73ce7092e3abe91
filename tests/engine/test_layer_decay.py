"""LayerDecayOptimizerConstructor against the original ViT-Adapter rule, written again here."""
import logging

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS, DefaultScope
from torch import nn

import mmdet_dinov2  # noqa: F401  (registers the constructor and the backbone)
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmdet_dinov2.engine.optimizers.layer_decay import get_layer_id

register_all_modules(init_default_scope=False)
CONFIGS = 'configs/vit_adapter/mask-rcnn_dinov2-adapter-{}_fpn_3x_coco.py'
LR, WD = 1e-4, 0.05


def expected_lr_and_wd(name, param, depth, rate, lr=LR, wd=WD):
    """The original's rule, by name: how many layers below the top a parameter sits."""
    parts = name.split('.')
    if parts[0] == 'backbone' and parts[1] in ('patch_embed', 'pos_embed', 'cls_token'):
        below_top = depth + 1
    elif parts[0] == 'backbone' and parts[1] == 'blocks':
        below_top = depth - int(parts[2])
    else:  # adapter, neck, heads
        below_top = 0
    no_decay = param.dim() < 2 or parts[-1] == 'bias'
    return lr * rate ** below_top, 0.0 if no_decay else wd


def build_optimizer(model, num_layers, rate, wrapper='OptimWrapper'):
    cfg = dict(type=wrapper, constructor='LayerDecayOptimizerConstructor',
               optimizer=dict(type='AdamW', lr=LR, weight_decay=WD),
               paramwise_cfg=dict(num_layers=num_layers, layer_decay_rate=rate))
    with DefaultScope.overwrite_default_scope('mmdet'):
        return build_optim_wrapper(model, cfg)


def group_of(optim_wrapper):
    return {id(p): group for group in optim_wrapper.optimizer.param_groups
            for p in group['params']}


def meta_detector(size, **backbone):
    cfg = Config.fromfile(CONFIGS.format(size))
    cfg.model.backbone.update(pretrained=None, **backbone)
    with torch.device('meta'):
        return MODELS.build(cfg.model), cfg


@pytest.mark.parametrize('size', ['s', 'l'])
def test_groups_follow_the_original_rule(size):
    model, cfg = meta_detector(size)
    paramwise = cfg.optim_wrapper.paramwise_cfg
    groups = group_of(build_optimizer(model, paramwise.num_layers, paramwise.layer_decay_rate))
    named = list(model.named_parameters())
    assert len(groups) == len(named)  # every parameter exactly once
    for name, param in named:
        lr, wd = expected_lr_and_wd(name, param, paramwise.num_layers, paramwise.layer_decay_rate)
        group = groups[id(param)]
        assert group['lr'] == pytest.approx(lr, rel=1e-12), name
        assert group['weight_decay'] == wd, name


def test_original_quirks_are_kept():
    """The original's no-decay name list never matched prefixed names: pos_embed decays."""
    model, _ = meta_detector('s')
    groups = group_of(build_optimizer(model, 12, 0.7))
    params = dict(model.named_parameters())
    for name in ('backbone.pos_embed', 'backbone.level_embed'):
        assert groups[id(params[name])]['weight_decay'] == WD
    assert groups[id(params['backbone.blocks.0.gamma1'])]['weight_decay'] == 0
    assert groups[id(params['backbone.patch_embed.proj.weight'])]['lr'] == pytest.approx(
        LR * 0.7 ** 13)
    assert groups[id(params['backbone.blocks.11.attn.qkv.weight'])]['lr'] == pytest.approx(
        LR * 0.7)
    # the adapter's interactions are not ViT blocks: full lr
    assert groups[id(params['backbone.interactions.0.injector.gamma'])]['lr'] == LR


def test_frozen_parameters_are_left_out():
    model, _ = meta_detector('s', freeze_vit=True)
    optimizer = build_optimizer(model, 12, 0.7).optimizer
    in_groups = {id(p) for g in optimizer.param_groups for p in g['params']}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert in_groups == trainable
    assert not any(name.startswith('backbone.blocks.')
                   for name, p in model.named_parameters() if id(p) in in_groups)


class TinyViTDetector(nn.Module):
    """The parameter names the rule looks at, at toy size."""

    def __init__(self, depth=2):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.patch_embed = nn.Linear(4, 4)
        self.backbone.pos_embed = nn.Parameter(torch.zeros(1, 5, 4))
        self.backbone.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(depth))
        self.neck = nn.Linear(4, 4)


def test_schedule_scales_each_groups_own_lr():
    """The config's warm-up and steps multiply every group's own lr exactly as mmcv 1.x's
    LrUpdaterHook did for the original (linear warm-up, 500 iterations, ratio 0.001; steps)."""
    model = TinyViTDetector()
    optimizer = build_optimizer(model, 2, 0.5).optimizer
    initial = [g['lr'] for g in optimizer.param_groups]
    assert sorted(set(initial)) == pytest.approx([LR / 8, LR / 4, LR / 2, LR])
    schedulers = [PARAM_SCHEDULERS.build(dict(cfg, optimizer=optimizer))
                  for cfg in Config.fromfile(CONFIGS.format('s')).param_scheduler]
    iters_per_epoch = 20
    for epoch in range(36):
        for i in range(iters_per_epoch):
            it = epoch * iters_per_epoch + i
            # mmcv 1.x: k = (1 - it / warmup_iters) * (1 - warmup_ratio); lr = regular * (1 - k)
            warm = 1 - (1 - it / 500) * (1 - 0.001) if it < 500 else 1.0
            step = 0.1 ** sum(epoch >= m for m in (27, 33))
            for group, lr0 in zip(optimizer.param_groups, initial):
                assert group['lr'] == pytest.approx(lr0 * warm * step, rel=1e-9), (epoch, i)
            for scheduler in schedulers:  # ParamSchedulerHook: after every iteration ...
                if not scheduler.by_epoch:
                    scheduler.step()
        for scheduler in schedulers:  # ... and after every epoch
            if scheduler.by_epoch:
                scheduler.step()


def test_amp_optim_wrapper_gets_the_same_groups(monkeypatch):
    """AmpOptimWrapper (--amp) wraps the same groups; mmengine builds it only with CUDA."""
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    if not torch.cuda.is_available():
        monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)
    model = TinyViTDetector()
    plain = build_optimizer(model, 2, 0.5)
    amp = build_optimizer(model, 2, 0.5, wrapper='AmpOptimWrapper')
    assert type(amp).__name__ == 'AmpOptimWrapper'
    strip = [{k: v for k, v in g.items() if k != 'params'} | {'n': len(g['params'])}
             for g in plain.optimizer.param_groups]
    assert strip == [{k: v for k, v in g.items() if k != 'params'} | {'n': len(g['params'])}
                     for g in amp.optimizer.param_groups]


def test_logs_one_line_per_group():
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        optimizer = build_optimizer(TinyViTDetector(), 2, 0.5).optimizer
    finally:
        logger.removeHandler(handler)
    text = '\n'.join(r.getMessage() for r in records)
    assert 'layer_decay_rate=0.5' in text
    rows = [line for line in text.splitlines() if line.split() and line.split()[0].isdigit()]
    assert len(rows) == len(optimizer.param_groups)
    assert 'blocks' not in text  # a table, not a list of parameter names


@pytest.mark.parametrize('paramwise, match', [
    (dict(layer_decay_rate=0.7), 'missing'),
    (dict(num_layers=12, layer_decay_rate=0.7, norm_decay_mult=0.0), 'unknown'),
    (dict(num_layers=12, layer_decay_rate=1.5), 'layer_decay_rate'),
    (dict(num_layers=0, layer_decay_rate=0.7), 'num_layers'),
])
def test_bad_paramwise_cfg_is_refused(paramwise, match):
    cfg = dict(type='OptimWrapper', constructor='LayerDecayOptimizerConstructor',
               optimizer=dict(type='AdamW', lr=LR, weight_decay=WD), paramwise_cfg=paramwise)
    with pytest.raises(ValueError, match=match), DefaultScope.overwrite_default_scope('mmdet'):
        build_optim_wrapper(TinyViTDetector(), cfg)


def test_weight_decay_is_required():
    cfg = dict(type='OptimWrapper', constructor='LayerDecayOptimizerConstructor',
               optimizer=dict(type='AdamW', lr=LR),
               paramwise_cfg=dict(num_layers=2, layer_decay_rate=0.7))
    with pytest.raises(ValueError, match='weight_decay'), \
            DefaultScope.overwrite_default_scope('mmdet'):
        build_optim_wrapper(TinyViTDetector(), cfg)


class NestedViTDetector(nn.Module):
    """A backbone that keeps its ViT as ``backbone.vit`` (composition), plus an adapter part."""

    def __init__(self, depth=2):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.vit = TinyViTDetector(depth).backbone
        self.backbone.spm = nn.Linear(4, 4)
        self.neck = nn.Linear(4, 4)


def build_optimizer_with(model, **paramwise):
    cfg = dict(type='OptimWrapper', constructor='LayerDecayOptimizerConstructor',
               optimizer=dict(type='AdamW', lr=LR, weight_decay=WD), paramwise_cfg=paramwise)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return build_optim_wrapper(model, cfg)


def _refusal(model, **paramwise):
    with pytest.raises(ValueError) as info:
        build_optimizer_with(model, **paramwise)
    return str(info.value)


def test_a_nested_vit_is_refused_with_its_parameters_listed():
    message = _refusal(NestedViTDetector(), num_layers=2, layer_decay_rate=0.7)
    for name in ('backbone.vit.blocks.0.weight', 'backbone.vit.blocks.1.bias', 'backbone.vit.pos_embed',
                 'backbone.vit.patch_embed.weight'):
        assert name in message, (name, message)
    assert 'backbone.spm' not in message.split('. The rule')[0]  # an adapter name of the default rule
    assert '7 backbone parameters' in message and 'no block' in message, message
    assert 'block_prefix' in message and 'embedding_names' in message and 'adapter_names' in message


def test_a_long_list_is_cut():
    message = _refusal(NestedViTDetector(depth=12), num_layers=12, layer_decay_rate=0.7)
    assert '27 backbone parameters' in message and 'and 7 more' in message, message


def test_the_rule_can_name_a_nested_vit():
    depth, rate = 3, 0.5
    model = NestedViTDetector(depth)
    rule = dict(embedding_names=['backbone.vit.patch_embed', 'backbone.vit.pos_embed'],
                block_prefix='backbone.vit.blocks', adapter_names=['backbone.spm'])
    groups = group_of(build_optimizer_with(model, num_layers=depth, layer_decay_rate=rate, **rule))
    expected = {'backbone.vit.patch_embed.weight': 0, 'backbone.vit.patch_embed.bias': 0,
                'backbone.vit.pos_embed': 0,
                'backbone.spm.weight': depth + 1, 'backbone.spm.bias': depth + 1,
                'neck.weight': depth + 1, 'neck.bias': depth + 1}
    expected.update({f'backbone.vit.blocks.{i}.{p}': i + 1 for i in range(depth) for p in ('weight', 'bias')})
    named = dict(model.named_parameters())
    assert set(named) == set(expected)
    for name, layer_id in expected.items():
        group = groups[id(named[name])]
        assert group['layer_id'] == layer_id, name
        assert group['lr'] == pytest.approx(LR * rate ** (depth + 1 - layer_id), rel=1e-12), name


def test_an_unknown_backbone_parameter_is_refused():
    """It would have trained at the full lr like the adapter, silently."""
    model = TinyViTDetector()
    model.backbone.prompt_tokens = nn.Parameter(torch.zeros(1, 4, 4))
    message = _refusal(model, num_layers=2, layer_decay_rate=0.7)
    assert '1 backbone parameters' in message and 'backbone.prompt_tokens' in message, message
    # named as an embedding, it is layer 0
    groups = group_of(build_optimizer_with(model, num_layers=2, layer_decay_rate=0.7, embedding_names=[
        'backbone.pos_embed', 'backbone.patch_embed', 'backbone.prompt_tokens']))
    assert groups[id(model.backbone.prompt_tokens)]['layer_id'] == 0


@pytest.mark.parametrize('num_layers', [1, 3])
def test_num_layers_must_match_the_blocks(num_layers):
    message = _refusal(TinyViTDetector(depth=2), num_layers=num_layers, layer_decay_rate=0.7)
    assert f'num_layers={num_layers}' in message and 'blocks 0..1 (2 of them)' in message, message


def test_the_l_config_with_s_num_layers_is_refused():
    model, _ = meta_detector('l')
    message = _refusal(model, num_layers=12, layer_decay_rate=0.7)
    assert 'num_layers=12' in message and 'blocks 0..23' in message, message


@pytest.mark.parametrize('name', ['backbone.visual_embed', 'backbone.visual_embed.proj.weight',
                                  'backbone.layers.3.attn.qkv.weight', 'backbone.blocks.x.weight',
                                  'backbone.vit.blocks.0.weight'])
def test_names_of_other_backbones_have_no_layer(name):
    """The original's rule also knew visual_embed and layers.N (other backbones): not this model's."""
    with pytest.raises(ValueError, match='fits no name'):
        get_layer_id(name, 12)


@pytest.mark.parametrize('name, layer_id', [
    ('backbone.pos_embed', 0), ('backbone.cls_token', 0), ('backbone.patch_embed.proj.weight', 0),
    ('backbone.blocks.0.norm1.weight', 1), ('backbone.blocks.11.mlp.fc2.bias', 12),
    ('backbone.level_embed', 13), ('backbone.interactions.3.extractor.ffn.fc1.weight', 13),
    ('backbone.norm4.bias', 13), ('neck.lateral_convs.0.conv.weight', 13), ('roi_head.x', 13),
])
def test_get_layer_id(name, layer_id):
    assert get_layer_id(name, 12) == layer_id


@pytest.mark.parametrize('paramwise, error', [
    (dict(block_prefix=3), TypeError),
    (dict(block_prefix=''), TypeError),
    (dict(embedding_names='backbone.pos_embed'), TypeError),
    (dict(adapter_names=[1]), TypeError),
])
def test_bad_rule_keys_are_refused(paramwise, error):
    cfg = dict(type='OptimWrapper', constructor='LayerDecayOptimizerConstructor',
               optimizer=dict(type='AdamW', lr=LR, weight_decay=WD),
               paramwise_cfg=dict(num_layers=2, layer_decay_rate=0.7, **paramwise))
    with pytest.raises(error, match=next(iter(paramwise))), DefaultScope.overwrite_default_scope('mmdet'):
        build_optim_wrapper(TinyViTDetector(), cfg)


# layer 0 of each new backbone: its embeddings and tokens (DINOv3's RoPE periods are a buffer)
NEW_BACKBONES = {
    'dinov3-adapter-s': (12, ['cls_token', 'patch_embed.proj.bias', 'patch_embed.proj.weight', 'register_tokens']),
    'dinov3-adapter-b': (12, ['cls_token', 'patch_embed.proj.bias', 'patch_embed.proj.weight', 'register_tokens']),
    'dinov3-adapter-l': (24, ['cls_token', 'patch_embed.proj.bias', 'patch_embed.proj.weight', 'register_tokens']),
    'dinov2-reg4-adapter-s': (12, ['cls_token', 'patch_embed.proj.bias', 'patch_embed.proj.weight', 'pos_embed',
                                   'register_tokens']),
    'dinov2-reg4-adapter-g': (40, ['cls_token', 'patch_embed.proj.bias', 'patch_embed.proj.weight', 'pos_embed',
                                   'register_tokens']),
}


@pytest.mark.parametrize('name', NEW_BACKBONES)
def test_groups_of_the_dinov3_and_reg4_backbones(name):
    """Layer 0: patch embedding, position embedding (reg4), class and register tokens; block i: layer
    i + 1; the adapter, neck and heads: the top layer; the ViT's final norm is frozen (unused by the
    adapter's forward) and in no group."""
    depth, layer0 = NEW_BACKBONES[name]
    cfg = Config.fromfile(f'configs/vit_adapter/mask-rcnn_{name}_fpn_3x_coco.py')
    cfg.model.backbone.update(pretrained=None)
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    paramwise = cfg.optim_wrapper.paramwise_cfg
    assert paramwise.num_layers == depth
    groups = group_of(build_optimizer(model, paramwise.num_layers, paramwise.layer_decay_rate))
    named = dict(model.named_parameters())
    by_layer = {}
    for full_name, param in named.items():
        if not param.requires_grad:
            assert id(param) not in groups
            continue
        by_layer.setdefault(groups[id(param)]['layer_id'], []).append(full_name)
    assert sorted(n[len('backbone.'):] for n in by_layer[0]) == layer0
    for i in range(depth):
        assert by_layer[i + 1] and all(n.startswith(f'backbone.blocks.{i}.') for n in by_layer[i + 1])
    assert sorted(by_layer) == list(range(depth + 2))
    frozen = sorted(n for n, p in named.items() if not p.requires_grad)
    assert frozen == ['backbone.norm.bias', 'backbone.norm.weight']
    assert 'backbone.rope_embed.periods' not in named  # a buffer: no group, loaded with the weights
