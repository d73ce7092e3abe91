"""DINOv3 state dicts (official and timm's) through the converter and the reporting loader, and the
files that belong to another config: each refused naming the file and the config to use."""
import logging

import pytest
import torch

from mmdet_dinov2.checkpoints import detect_format, load_backbone_weights
from mmdet_dinov2.checkpoints.convert.dinov3 import convert_dinov3
from mmdet_dinov2.models.backbones import ViT
from tests import fake_checkpoints as fake
from tests.helpers import load_tool

LOGGER = 'test_dinov3_checkpoints'
DIM, HEADS = 64, 4


def dinov3_vit(depth=2, swiglu=False, qkv_bias=True, mlp_ratio=4, **kwargs):
    return ViT(embed_dim=DIM, depth=depth, num_heads=HEADS, mlp_ratio=mlp_ratio, ffn_type='swiglu' if swiglu else 'mlp',
               pos_embed_type='rope', with_cls_token=True, num_register_tokens=4, final_norm=True,
               norm_eps=1e-5, qkv_bias=qkv_bias, mask_k_bias=True, **kwargs)


def _save(sd, path):
    torch.save(sd, path)
    return path


def _load(model, path):
    return load_backbone_weights(model, path, logger=logging.getLogger(LOGGER))


def test_formats_are_detected():
    assert detect_format(fake.dinov3()) == 'dinov3'
    assert detect_format(fake.dinov3_timm().state_dict()) == 'dinov3_timm'
    assert detect_format(dinov3_vit().state_dict()) == 'dinov2_converted'  # our own names


def test_conversion_is_pure_and_complete():
    sd = fake.dinov3(swiglu=True, local_cls_norm=True)
    before = {k: v.clone() for k, v in sd.items()}
    converted, notes = convert_dinov3(sd)
    assert all(torch.equal(sd[k], before[k]) for k in before) and set(sd) == set(before)
    assert torch.equal(converted['blocks.1.mlp.fc1.weight'],
                       torch.cat([sd['blocks.1.mlp.w1.weight'], sd['blocks.1.mlp.w2.weight']]))
    assert torch.equal(converted['blocks.0.gamma2'], sd['blocks.0.ls2.gamma'])
    assert torch.equal(converted['register_tokens'], sd['storage_tokens'])
    assert 'mask_token' not in converted and 'local_cls_norm.weight' in converted
    assert any('storage_tokens -> register_tokens' in n for n in notes)


@pytest.mark.parametrize('swiglu, qkv_bias, local', [(False, True, False), (True, True, False), (True, False, True)])
def test_official_file_loads_every_tensor_or_says_why(swiglu, qkv_bias, local, tmp_path, caplog):
    sd = fake.dinov3(swiglu=swiglu, qkv_bias=qkv_bias, local_cls_norm=local)
    model = dinov3_vit(swiglu=swiglu, qkv_bias=qkv_bias)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        report = _load(model, _save(sd, tmp_path / 'dinov3_vits16_pretrain_lvd1689m-08c60483.pth'))
    assert report['format'] == 'dinov3' and report['missing'] == {}
    assert set(report['unused']) == ({'local_cls_norm.weight', 'local_cls_norm.bias'} if local else set())
    assert len(report['loaded']) == len(model.state_dict())
    assert torch.equal(model.rope_embed.periods, sd['rope_embed.periods'])
    assert torch.equal(model.register_tokens, sd['storage_tokens'])
    if qkv_bias:
        assert torch.equal(model.blocks[1].attn.qkv.bias_mask, sd['blocks.1.attn.qkv.bias_mask'])
    if local:
        assert 'local crops in pretraining only' in caplog.text
    assert 'official DINOv3' in caplog.text and 'dropped mask_token' in caplog.text


@pytest.mark.parametrize('name, swiglu', [('vit_small_patch16_dinov3', False),
                                          ('vit_small_patch16_dinov3_qkvb', False),
                                          ('vit_small_plus_patch16_dinov3', True)])
def test_timm_file_gives_timms_features(name, swiglu, tmp_path):
    """timm's own names load, and our intermediate maps equal timm's forward_intermediates."""
    ref = fake.dinov3_timm(name, dim=DIM, heads=HEADS, depth=2)
    model = dinov3_vit(swiglu=swiglu, mlp_ratio=6 if swiglu else 4).eval()
    report = _load(model, _save(ref.state_dict(), tmp_path / f'{name}.pth'))
    assert report['format'] == 'dinov3_timm' and report['missing'] == {} and report['unused'] == {}
    img = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        want = ref.forward_intermediates(img, indices=[0, 1], norm=True, output_fmt='NCHW',
                                         intermediates_only=True)
        got = model.get_intermediate_layers(img, n=[0, 1], norm=True)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        assert (a - b).abs().max() <= 1e-4


def test_dinov3_file_into_a_dinov2_model_names_the_config(tmp_path):
    model = ViT(embed_dim=384, depth=1, num_heads=6)
    path = _save(fake.dinov3(dim=384, depth=1), tmp_path / 'dinov3_vits16_pretrain.pth')
    with pytest.raises(ValueError, match=r'dinov3_vits16_pretrain\.pth is a DINOv3 ViT-S/16 checkpoint.*'
                                         r'mask-rcnn_dinov3-adapter-s_fpn_3x_coco\.py'):
        _load(model, path)


@pytest.mark.parametrize('registers, config', [(0, 'mask-rcnn_dinov2-adapter-b'),
                                               (4, 'mask-rcnn_dinov2-reg4-adapter-b')])
def test_dinov2_file_into_a_dinov3_model_names_the_config(registers, config, tmp_path):
    model = ViT(embed_dim=768, depth=1, num_heads=12, pos_embed_type='rope', with_cls_token=True,
                num_register_tokens=4, final_norm=True)
    path = _save(fake.dinov2(768, depth=1, registers=registers), tmp_path / 'dinov2_vitb14_pretrain.pth')
    with pytest.raises(ValueError, match=rf'dinov2_vitb14_pretrain\.pth is a DINOv2 checkpoint.*{config}_fpn'):
        _load(model, path)


def test_convnext_file_is_refused_naming_the_vit_configs(tmp_path):
    sd = {'downsample_layers.0.0.weight': torch.zeros(96, 3, 4, 4),
          'stages.0.0.dwconv.weight': torch.zeros(96, 1, 7, 7), 'norm.weight': torch.zeros(768)}
    with pytest.raises(ValueError, match=r'convnext_tiny\.pth: this is a ConvNeXt checkpoint.*'
                                         r'mask-rcnn_dinov3-adapter'):
        _load(dinov3_vit(), _save(sd, tmp_path / 'dinov3_convnext_tiny.pth'))


def test_file_without_registers_into_a_reg4_model_is_refused(tmp_path):
    model = ViT(pretrain_size=518, patch_size=14, embed_dim=384, depth=1, num_heads=6, with_cls_token=True,
                num_register_tokens=4, final_norm=True)
    with pytest.raises(ValueError, match=r'has no register tokens.*\*_reg4 file.*mask-rcnn_dinov2-adapter-s_fpn'):
        _load(model, _save(fake.dinov2(384, depth=1), tmp_path / 'dinov2_vits14_pretrain.pth'))


def test_reg4_file_loads_its_registers_and_class_token(tmp_path):
    sd = fake.dinov2(384, depth=1, registers=4)
    model = ViT(pretrain_size=592, embed_dim=384, depth=1, num_heads=6, with_cls_token=True, num_register_tokens=4,
                final_norm=True)
    report = _load(model, _save(sd, tmp_path / 'dinov2_vits14_reg4_pretrain.pth'))
    assert report['missing'] == {} and report['unused'] == {}
    assert torch.equal(model.register_tokens, sd['register_tokens'])
    assert torch.equal(model.cls_token, sd['cls_token']) and torch.equal(model.norm.weight, sd['norm.weight'])


def test_convert_tool_names_dinov3_and_reg4_files(tmp_path, capsys):
    tool = load_tool('tools/convert_14to16.py')
    v3 = _save(fake.dinov3(dim=768, depth=1), tmp_path / 'dinov3_vitb16_pretrain_lvd1689m.pth')
    with pytest.raises(SystemExit, match=r'official DINOv3 ViT-B/16 file: its patch is 16 already.*'
                                         r'mask-rcnn_dinov3-adapter-b_fpn_3x_coco\.py'):
        tool.main([str(v3)])
    reg4 = _save(fake.dinov2(384, depth=1, registers=4), tmp_path / 'dinov2_vits14_reg4_pretrain.pth')
    tool.main([str(reg4)])
    out = capsys.readouterr().out
    assert 'dinov2_vits14_reg4_pretrain.pth ->' in out and 'mask-rcnn_dinov2-reg4-adapter-s_fpn_3x_coco.py' in out


def _frozen_adapter(depth=4):
    from mmdet_dinov2.models.backbones import DINOv3Adapter
    return DINOv3Adapter(embed_dim=DIM, depth=depth, num_heads=HEADS, interaction_indexes=[0, 1, 2, 3],
                         conv_inplane=8, n_points=2, deform_num_heads=4, norm_cfg=dict(type='BN'))


def test_official_dinov3_adapter_file_loads_with_a_report(tmp_path, caplog):
    """The official DINOv3_Adapter's state dict: its ViT under backbone.* in DINOv3's names."""
    official = fake.dinov3_adapter(_frozen_adapter().state_dict(), depth=4, local_cls_norm=True)
    assert detect_format(official) == 'dinov3_adapter'
    model = _frozen_adapter()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        report = _load(model, _save(official, tmp_path / 'dinov3_adapter_ade20k.pth'))
    assert report['format'] == 'dinov3_adapter' and report['missing'] == {}
    assert set(report['unused']) == {'local_cls_norm.weight', 'local_cls_norm.bias'}
    assert torch.equal(model.blocks[3].gamma1, official['backbone.blocks.3.ls1.gamma'])
    assert torch.equal(model.interactions[3].extra_extractors[0].ffn.fc1.weight,
                       official['interactions.3.extra_extractors.0.ffn.fc1.weight'])
    assert "official DINOv3_Adapter" in caplog.text


def test_official_vit_file_into_the_frozen_adapter_leaves_the_adapter_initialised(tmp_path):
    model = _frozen_adapter()
    report = _load(model, _save(fake.dinov3(depth=4), tmp_path / 'dinov3_vits16_pretrain.pth'))
    assert report['format'] == 'dinov3' and report['unused'] == {}
    assert set(report['missing']) == {'level_embed', 'spm', 'interactions', 'up', 'norm1', 'norm2', 'norm3',
                                      'norm4'}


def test_masked_k_bias_file_into_a_model_without_the_mask_is_refused(tmp_path):
    model = ViT(
        embed_dim=DIM, depth=2, num_heads=HEADS, pos_embed_type='rope', with_cls_token=True, num_register_tokens=4,
        final_norm=True, norm_eps=1e-5)
    with pytest.raises(ValueError, match=r'masks the k bias.*mask_k_bias=True'):
        _load(model, _save(fake.dinov3(), tmp_path / 'dinov3_vits16_pretrain.pth'))
