"""load_backbone_weights: files of each format into a model with the ViTAdapter's names."""
import logging
from pathlib import Path

import pytest
import torch

from mmdet_dinov2.checkpoints import CheckpointError, convert_dinov2, load_backbone_weights
from mmdet_dinov2.checkpoints.load import VARIANTS, config_to_use
from tests import fake_checkpoints as fake
from tests.checkpoints.stand_in import StandInViTAdapter

LOGGER = 'test_load_backbone'


def _save(state_dict, path):
    torch.save(state_dict, path)
    return path


def _assert_loaded(model, expected):
    model_state = model.state_dict()
    for key, value in expected.items():
        if key in model_state:
            assert torch.equal(model_state[key], value), key


def test_official_dinov2_into_stand_in(tmp_path, vits_state_dict, caplog):
    path = _save(vits_state_dict, tmp_path / 'dinov2_vits14_pretrain.pth')
    model = StandInViTAdapter(384, depth=2)
    adapter_before = model.level_embed.detach().clone()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        report = load_backbone_weights(model, path, logger=logging.getLogger(LOGGER))
    converted, _ = convert_dinov2(vits_state_dict)
    _assert_loaded(model, converted)
    assert torch.equal(model.level_embed, adapter_before)
    assert report['format'] == 'dinov2'
    assert len(report['loaded']) == 2 + 1 + 2 * 14  # patch_embed, pos_embed, 2 blocks
    assert set(report['missing']) == {'level_embed', 'spm', 'up', 'norm1'}
    assert set(report['unused']) == {'cls_token', 'norm.weight', 'norm.bias'}
    assert 'class token' in report['unused']['cls_token']
    log = caplog.text
    assert 'expected: the adapter is not part of DINOv2' in log
    assert 'resampled patch_embed.proj.weight 14x14 -> 16x16 (bilinear)' in log
    assert 'WARNING' not in log


def test_reg4_into_a_model_without_registers_is_refused(tmp_path):
    """The registers are not dropped silently (the ViT was trained with them); the error names the
    reg4 config."""
    path = _save(fake.dinov2(384, depth=1, registers=4), tmp_path / 'dinov2_vits14_reg4.pth')
    with pytest.raises(ValueError, match=r'reg4 checkpoint.*mask-rcnn_dinov2-reg4-adapter-s'):
        load_backbone_weights(StandInViTAdapter(384, depth=1), path, logger=logging.getLogger(LOGGER))


def test_converted_file_with_other_kernel_is_resampled(tmp_path, vits_state_dict):
    converted, _ = convert_dinov2(vits_state_dict, patch_size=14)  # renamed, kernel kept 14x14
    path = _save(converted, tmp_path / 'converted14.pth')
    report = load_backbone_weights(StandInViTAdapter(384, depth=2), path,
                                   logger=logging.getLogger(LOGGER), method='pinv')
    assert report['format'] == 'dinov2_converted'
    assert any('14x14 -> 16x16 (pinv): the checkpoint was made for another patch size' in note
               for note in report['notes'])


def test_detector_checkpoint_round_trip(tmp_path, vits_state_dict):
    source = StandInViTAdapter(384, depth=2)
    load_backbone_weights(source, _save(vits_state_dict, tmp_path / 'd.pth'),
                          logger=logging.getLogger(LOGGER))
    with torch.no_grad():
        source.level_embed.normal_()
    detector = {'meta': {'epoch': 1},
                'state_dict': {**{'backbone.' + k: v for k, v in source.state_dict().items()},
                               'neck.fpn_convs.0.conv.weight': torch.zeros(1)}}
    target = StandInViTAdapter(384, depth=2)
    report = load_backbone_weights(target, _save(detector, tmp_path / 'detector.pth'),
                                   logger=logging.getLogger(LOGGER))
    assert report['format'] == 'vit_adapter_detector'
    assert report['missing'] == {} and report['unused'] == {}
    _assert_loaded(target, source.state_dict())


def test_fewer_model_blocks_leave_checkpoint_blocks_unused(tmp_path):
    path = _save(fake.dinov2(384, depth=3), tmp_path / 'deep.pth')
    report = load_backbone_weights(StandInViTAdapter(384, depth=1), path,
                                   logger=logging.getLogger(LOGGER))
    beyond = [k for k, why in report['unused'].items() if why == 'a block beyond the model depth']
    assert len(beyond) == 2 * 14 and all(k.startswith(('blocks.1.', 'blocks.2.')) for k in beyond)


def test_more_model_blocks_than_checkpoint_is_an_error(tmp_path, vits_state_dict):
    path = _save(vits_state_dict, tmp_path / 'shallow.pth')
    with pytest.raises(ValueError, match='lacks 28 ViT parameters.*the checkpoint has 2 blocks, '
                                         'the model 4'):
        load_backbone_weights(StandInViTAdapter(384, depth=4), path, logger=logging.getLogger(LOGGER))


def test_vits_into_vitb_names_shapes_and_cause(tmp_path, vits_state_dict):
    path = _save(vits_state_dict, tmp_path / 'dinov2_vits14_pretrain.pth')
    model = StandInViTAdapter(768, depth=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as info:
        load_backbone_weights(model, path, logger=logging.getLogger(LOGGER))
    message = str(info.value)
    assert 'pos_embed: checkpoint (1, 1370, 384), model (1, 1370, 768)' in message
    assert 'ViT-S weights (dim 384) into a ViT-B model (dim 768)' in message
    assert str(path) in message
    _assert_loaded(model, before)  # nothing was loaded


def test_position_grid_mismatch_names_pretrain_size(tmp_path, vits_state_dict):
    model = StandInViTAdapter(384, depth=2)
    model.pos_embed = torch.nn.Parameter(torch.zeros(1, 1 + 14 * 14, 384))
    with pytest.raises(ValueError, match='37x37 position grid in the checkpoint, 14x14 in the '
                                         'model: build the model with pretrain_size'):
        load_backbone_weights(model, _save(vits_state_dict, tmp_path / 'd.pth'),
                              logger=logging.getLogger(LOGGER))


def test_non_finite_weights_are_refused_before_loading(tmp_path, vits_state_dict):
    damaged = dict(vits_state_dict)
    damaged['blocks.1.attn.proj.weight'] = damaged['blocks.1.attn.proj.weight'].clone()
    damaged['blocks.1.attn.proj.weight'][0, :3] = float('nan')
    path = _save(damaged, tmp_path / 'damaged.pth')
    model = StandInViTAdapter(384, depth=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r'damaged\.pth: 1 tensors hold NaN or inf: '
                                              r'blocks\.1\.attn\.proj\.weight \(3 values\).*download'):
        load_backbone_weights(model, path, logger=logging.getLogger(LOGGER))
    _assert_loaded(model, before)  # nothing was loaded


@pytest.mark.parametrize('family, sizes', [('dinov2', 'sblg'), ('dinov2_reg4', 'sblg'), ('dinov3', 'sbl')])
def test_the_config_named_in_errors_exists(family, sizes):
    configs = Path(__file__).parents[2] / 'configs' / 'vit_adapter'
    for dim, variant in VARIANTS.items():
        if variant[-1].lower() in sizes:
            hint = config_to_use(family, dim)
            assert hint.startswith(f'a {variant} config such as ')
            assert (configs / hint.split()[-1]).is_file(), hint
    assert 'widened to embed_dim=1280' in config_to_use('dinov3', 1280)


def test_resnet_file_is_rejected(tmp_path):
    resnet = {'conv1.weight': torch.zeros(64, 3, 7, 7), 'bn1.weight': torch.zeros(64),
              'layer1.0.conv1.weight': torch.zeros(64, 64, 1, 1)}
    with pytest.raises(ValueError, match=r'not a DINOv2/ViT-Adapter checkpoint: keys look like '
                                         r"\['conv1.weight'"):
        load_backbone_weights(StandInViTAdapter(), _save(resnet, tmp_path / 'resnet50.pth'),
                              logger=logging.getLogger(LOGGER))


@pytest.fixture(scope='module')
def vit_adapter_cls():
    """The real ViTAdapter; skipped only while its file does not exist (an import error fails)."""
    source = Path(__file__).parents[2] / 'mmdet_dinov2/models/backbones/vit_adapter.py'
    if not source.exists():
        pytest.skip(f'{source} is not written yet')
    from mmdet_dinov2.models.backbones import ViTAdapter
    return ViTAdapter


def test_real_vit_adapter(tmp_path, vit_adapter_cls):
    """The real ViTAdapter, depth reduced: every ViT tensor loaded, adapter parts reported."""
    model = vit_adapter_cls(pretrain_size=592, embed_dim=384, depth=4, num_heads=6,
                            interaction_indexes=[[0, 1], [2, 3]], norm_cfg=dict(type='BN'))
    sd = fake.dinov2(384, depth=4)
    report = load_backbone_weights(model, _save(sd, tmp_path / 'dinov2_vits14_pretrain.pth'),
                                   logger=logging.getLogger(LOGGER))
    converted, _ = convert_dinov2(sd)
    assert set(report['loaded']) == set(converted) - {'cls_token', 'norm.weight', 'norm.bias'}
    _assert_loaded(model, converted)
    assert {'spm', 'level_embed', 'interactions', 'up'} <= set(report['missing'])
    assert not any(key.startswith(('blocks.', 'patch_embed.', 'pos_embed'))
                   for group in report['missing'].values() for key in group)


def test_real_vit_adapter_giant_swiglu(tmp_path, vit_adapter_cls):
    """ViT-g widths (dim 1536, SwiGLU w12 (8192, 1536), w3 (1536, 4096)) fit the real backbone."""
    model = vit_adapter_cls(pretrain_size=592, embed_dim=1536, depth=1, num_heads=24,
                            ffn_type='swiglu', deform_num_heads=24, interaction_indexes=[[0, 0]],
                            norm_cfg=dict(type='BN'))
    sd = fake.dinov2(1536, depth=1, swiglu=True)
    report = load_backbone_weights(model, _save(sd, tmp_path / 'dinov2_vitg14_pretrain.pth'),
                                   logger=logging.getLogger(LOGGER))
    assert torch.equal(model.state_dict()['blocks.0.mlp.fc1.weight'], sd['blocks.0.mlp.w12.weight'])
    assert torch.equal(model.state_dict()['blocks.0.mlp.fc2.weight'], sd['blocks.0.mlp.w3.weight'])
    assert set(report['unused']) == {'cls_token', 'norm.weight', 'norm.bias'}
