"""The configs: they parse, build the model the original described, and carry its recipe."""
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope

import mmdet_dinov2  # noqa: F401  (registers ViTAdapter and the optimizer constructor)
from mmdet_dinov2.models.backbones.archs import expand_arch
from mmdet.registry import MODELS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules

register_all_modules(init_default_scope=False)
ROOT = Path(__file__).resolve().parents[2]
SIZES = ('s', 'b', 'l', 'g')
ALL_CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'configs').rglob('*.py')
                     if '_base_' not in p.parts and 'vit_adapter' in p.parts)
IMAGENET_MEAN, IMAGENET_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
# short sides of the multi-scale resize: 480, 512, ..., 800
SHORT_SIDES = set(range(480, 801, 32))

# The original (detection/configs/mask_rcnn/dinov2/*.py): widths, recipe, reported #params.
ORIGINAL = {
    's': dict(embed_dim=384, depth=12, num_heads=6, drop_path_rate=0.2, deform_ratio=1.0,
              rate=0.70, params_m=48, readme_grid=14, global_blocks=[2, 5, 8, 11]),
    'b': dict(embed_dim=768, depth=12, num_heads=12, drop_path_rate=0.3, deform_ratio=0.5,
              rate=0.60, params_m=120, readme_grid=14, global_blocks=[2, 5, 8, 11]),
    'l': dict(embed_dim=1024, depth=24, num_heads=16, drop_path_rate=0.4, deform_ratio=0.5,
              rate=0.65, params_m=348, readme_grid=24, global_blocks=[5, 11, 17, 23]),
}


def load(size):
    return Config.fromfile(f'configs/vit_adapter/mask-rcnn_dinov2-adapter-{size}_fpn_3x_coco.py')


def backbone_keys(cfg):
    """The config's backbone dict with its ``arch`` preset expanded."""
    return ConfigDict(expand_arch(cfg.model.backbone))


def build_on_meta(cfg):
    cfg.model.backbone.pretrained = None
    with torch.device('meta'):
        return MODELS.build(cfg.model)


@pytest.mark.parametrize('path', ALL_CONFIGS)
def test_config_parses_and_imports_the_package(path):
    cfg = Config.fromfile(str(ROOT / path))
    assert cfg.custom_imports == dict(imports=['mmdet_dinov2'], allow_failed_imports=False)
    assert cfg.model.backbone.type in ('ViTAdapter', 'DINOv3Adapter')
    assert cfg.optim_wrapper.constructor == 'LayerDecayOptimizerConstructor'
    assert cfg.optim_wrapper.paramwise_cfg.num_layers == backbone_keys(cfg).depth


def test_sweep_covers_the_original_rates():
    rates = {Config.fromfile(str(ROOT / p)).optim_wrapper.paramwise_cfg.layer_decay_rate
             for p in ALL_CONFIGS if 'layer_decay' in p}
    assert {0.70, 0.75, 0.80, 0.90, 0.95} <= rates


@pytest.mark.parametrize('size', ['s', 'b', 'l'])
def test_size_configs_carry_the_original_recipe(size):
    cfg, ref = load(size), ORIGINAL[size]
    bb = backbone_keys(cfg)
    for key in ('embed_dim', 'depth', 'num_heads', 'drop_path_rate', 'deform_ratio'):
        assert bb[key] == ref[key], key
    assert bb.deform_num_heads == ref['num_heads']
    assert (bb.pretrain_size, bb.img_size, bb.patch_size, bb.mlp_ratio) == (592, 592, 16, 4)
    assert (bb.conv_inplane, bb.n_points, bb.cffn_ratio) == (64, 4, 0.25)
    assert bb.norm_cfg.type == 'SyncBN'
    assert bb.pretrained == f'pretrained/dinov2_vit{size}14_pretrain_14to16.pth'
    assert [i for i, w in enumerate(bb.window_attn) if not w] == ref['global_blocks']
    assert [i for i, w in enumerate(bb.window_size) if w is None] == ref['global_blocks']
    assert set(w for w in bb.window_size if w is not None) == {14}
    step = ref['depth'] // 4
    assert bb.interaction_indexes == [[i * step, i * step + step - 1] for i in range(4)]
    assert cfg.model.neck.in_channels == [ref['embed_dim']] * 4
    assert (cfg.model.neck.out_channels, cfg.model.neck.num_outs) == (256, 5)
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=1e-4, weight_decay=0.05)
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == ref['rate']
    assert cfg.optim_wrapper.get('clip_grad') is None
    assert cfg.train_cfg.max_epochs == 36 and cfg.train_cfg.val_interval == 1
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.by_epoch) == ('LinearLR', 0.001, False)
    assert (steps.type, steps.milestones, steps.gamma, steps.by_epoch) == (
        'MultiStepLR', [27, 33], 0.1, True)
    assert cfg.train_dataloader.batch_size == 2 and cfg.auto_scale_lr.base_batch_size == 16
    ckpt = cfg.default_hooks.checkpoint
    assert (ckpt.interval, ckpt.max_keep_ckpts, ckpt.save_last) == (1, 3, True)


@pytest.mark.parametrize('size', ['s', 'b', 'l'])
def test_model_builds_with_the_original_parameter_count(size):
    """The original README's #Param (48M / 120M / 348M) repeats the figure of its DeiT-S/B
    (224 px, a 14x14 position grid) and AugReg-L (384 px, 24x24) rows; the DINOv2 models differ
    only by their 37x37 position embedding."""
    ref = ORIGINAL[size]
    model = build_on_meta(load(size))
    params = sum(p.numel() for p in model.parameters())
    extra_positions = (37 ** 2 - ref['readme_grid'] ** 2) * ref['embed_dim']
    assert model.backbone.pos_embed.numel() == (37 ** 2 + 1) * ref['embed_dim']
    assert round((params - extra_positions) / 1e6) == ref['params_m']
    assert not any(k.startswith('data_preprocessor') for k in model.state_dict())


def test_g_config_builds_with_vit_g_widths():
    cfg = load('g')
    model = build_on_meta(cfg)
    bb = model.backbone
    assert len(bb.blocks) == 40 and bb.pos_embed.shape == (1, 37 * 37 + 1, 1536)
    block = bb.blocks[0]
    assert block.attn.qkv.weight.shape == (3 * 1536, 1536)
    # DINOv2 ViT-g's SwiGLU: w12 (1536 -> 2 x 4096), w3 (4096 -> 1536)
    assert block.mlp.fc1.weight.shape == (2 * 4096, 1536)
    assert block.mlp.fc2.weight.shape == (1536, 4096)
    vit = sum(p.numel() for n, p in bb.named_parameters() if n.startswith(('blocks', 'patch')))
    assert round(vit / 1e9, 1) == 1.1  # ViT-g/14: 1.1 B parameters
    keys = backbone_keys(cfg)
    assert keys.with_cp is True and keys.ffn_type == 'swiglu'
    assert keys.interaction_indexes == [[0, 9], [10, 19], [20, 29], [30, 39]]
    assert cfg.optim_wrapper.paramwise_cfg == dict(num_layers=40, layer_decay_rate=0.77)
    # the rate keeps L's lr profile over relative depth: rate_g ** 41 == 0.65 ** 25
    assert 0.77 ** 41 == pytest.approx(0.65 ** 25, rel=0.1)


def _sample(h=480, w=640):
    """A results dict as LoadImageFromFile + LoadAnnotations leave it: one box over the image."""
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return dict(img=img, img_shape=(h, w), ori_shape=(h, w), img_path='x.png', img_id=0,
                gt_bboxes=HorizontalBoxes(torch.tensor([[0., 0., w, h]])),
                gt_bboxes_labels=np.array([0]), gt_ignore_flags=np.array([False]),
                gt_masks=BitmapMasks(np.ones((1, h, w), np.uint8), h, w))


def _pipeline(transforms):
    with DefaultScope.overwrite_default_scope('mmdet'):
        return Compose([t for t in transforms
                        if t['type'] not in ('LoadImageFromFile', 'LoadAnnotations')])


def test_train_pipeline_is_detr_multiscale():
    """Flip, then (resize short side 480..800) or (resize 400/500/600, crop 384..600, resize
    480..800), then crop to at most 1024x1024: the original's AutoAugment policies."""
    pipeline = _pipeline(load('s').train_dataloader.dataset.pipeline)
    ratios = []
    for seed in range(40):
        np.random.seed(seed)
        out = pipeline(_sample())
        _, h, w = out['inputs'].shape
        assert min(h, w) in SHORT_SIDES and max(h, w) <= 1024, (seed, h, w)
        # the full-image box followed every resize and crop
        box = out['data_samples'].gt_instances.bboxes.tensor
        assert torch.allclose(box, torch.tensor([[0., 0., w, h]]), atol=0.01), (seed, box)
        assert out['data_samples'].gt_instances.masks.masks.shape == (1, h, w)
        ratios.append(w / h)
    uncropped_4_3 = [r for r in ratios if abs(r - 4 / 3) < 0.01]
    assert uncropped_4_3 and len(uncropped_4_3) < len(ratios)  # both policies were drawn


def test_test_pipeline_is_1333x800():
    out = _pipeline(load('s').test_dataloader.dataset.pipeline)(_sample())
    assert tuple(out['inputs'].shape[1:]) == (800, 1067)  # 640x480 x 5/3


def test_l_normalisation_quirk_of_the_original():
    """L trained with mean = std = 127.5 but was evaluated with the ImageNet mean/std."""
    cfg = load('l')
    assert cfg.model.data_preprocessor.mean is None and cfg.model.data_preprocessor.std is None
    assert cfg.model.data_preprocessor.bgr_to_rgb is False
    sample = _sample(64, 64)
    normalised = _pipeline(cfg.test_dataloader.dataset.pipeline)(dict(sample))['inputs']
    resized = _pipeline([t for t in cfg.test_dataloader.dataset.pipeline
                         if t['type'] != 'mmcv.Normalize'])(dict(sample))['inputs']
    rgb = resized.permute(1, 2, 0).numpy().astype(np.float32)[..., ::-1]
    expected = (rgb - IMAGENET_MEAN) / IMAGENET_STD
    assert np.allclose(normalised.permute(1, 2, 0).numpy(), expected, atol=1e-4)
    for t in cfg.train_dataloader.dataset.pipeline:
        if t['type'] == 'mmcv.Normalize':
            assert (t['mean'], t['std'], t['to_rgb']) == ([127.5] * 3, [127.5] * 3, True)
            break
    else:
        pytest.fail('no Normalize in the L train pipeline')
    s_cfg = load('s')
    assert s_cfg.model.data_preprocessor.mean == IMAGENET_MEAN
    assert s_cfg.model.data_preprocessor.bgr_to_rgb is True
