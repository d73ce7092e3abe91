"""``arch`` presets: a name stands for the recipe's keys, and keys given beside it win."""
import inspect

import pytest
import torch

from mmdet_dinov2.engine.launch import replace_sync_bn
from mmdet_dinov2.models.backbones import DINOv3Adapter, ViTAdapter
from mmdet_dinov2.models.backbones.archs import ARCHS, expand_arch

# two blocks and two interactions instead of the preset's depth, on one device
SMALL = dict(depth=2, window_attn=False, window_size=14, interaction_indexes=[[0, 0], [1, 1]],
             norm_cfg=dict(type='BN'))


def test_the_preset_fills_what_the_config_leaves_out():
    with torch.device('meta'):
        model = ViTAdapter(arch='dinov2-b', **SMALL)
    # B's widths from the preset, the depth and norm from the keys given
    assert model.embed_dim == 768 and len(model.blocks) == 2
    assert model.blocks[0].attn.num_heads == 12
    attn = model.interactions[0].injector.attn
    assert (attn.num_heads, attn.value_proj.out_features) == (12, 384)  # deform_ratio 0.5
    assert isinstance(model.norm1, torch.nn.BatchNorm2d)
    assert model.pos_embed.shape == (1, 37 * 37 + 1, 768)  # the 592 grid read as 16-pixel patches


def test_a_dinov3_preset_makes_the_dinov3_vit():
    with torch.device('meta'):
        model = ViTAdapter(arch='dinov3-s', **SMALL)
    assert not hasattr(model, 'pos_embed') and model.rope_embed is not None
    assert model.register_tokens.shape == (1, 4, 384) and model.cls_token is not None


def test_the_frozen_7b_preset():
    with torch.device('meta'):
        model = DINOv3Adapter(arch='dinov3-7b', depth=4, interaction_indexes=[0, 1, 2, 3],
                              norm_cfg=dict(type='BN'))
    block = model.blocks[0]
    assert model.embed_dim == 4096 and block.attn.qkv.bias is None  # qkv_bias=False
    # SwiGLU hidden 4096 * 3 * 2 / 3 = 8192, a multiple of 64
    assert block.mlp.fc1.weight.shape == (2 * 8192, 4096)


def test_an_unknown_arch_is_refused_with_the_presets_named():
    with pytest.raises(ValueError, match=r"arch='dinov2-xl'.*'dinov2-b'.*archs\.py"):
        ViTAdapter(arch='dinov2-xl')
    with pytest.raises(ValueError, match=r"arch='dinov2-s': DINOv3Adapter has the presets"):
        DINOv3Adapter(arch='dinov2-s')


def test_the_signature_keeps_every_argument_and_adds_arch():
    parameters = inspect.signature(ViTAdapter).parameters
    assert parameters['embed_dim'].default == 768 and parameters['arch'].default is None
    assert parameters['arch'].kind is inspect.Parameter.KEYWORD_ONLY


def test_expand_arch_keeps_the_given_keys_and_copies_the_preset():
    expanded = expand_arch(dict(type='ViTAdapter', arch='dinov2-l', drop_path_rate=0.1))
    assert expanded['drop_path_rate'] == 0.1 and expanded['depth'] == 24 and 'arch' not in expanded
    expanded['window_attn'].append(None)  # a copy: the table stays as it is
    assert len(ARCHS['ViTAdapter']['dinov2-l']['window_attn']) == 24
    assert expand_arch(dict(type='ResNet', depth=50)) == dict(type='ResNet', depth=50)


@pytest.mark.parametrize('type_', ['mmdet.ViTAdapter', ViTAdapter])
def test_a_scoped_or_class_type_finds_its_presets(type_):
    """Configs may name the type with its registry scope or give the class itself."""
    assert expand_arch(dict(type=type_, arch='dinov2-b'))['embed_dim'] == 768
    backbone = dict(type=type_, arch='dinov2-s')
    assert replace_sync_bn(dict(model=dict(backbone=backbone))) == 1  # the preset's SyncBN
    assert backbone['norm_cfg']['type'] == 'BN'


def test_positional_arguments_still_work_and_win():
    with torch.device('meta'):
        model = ViTAdapter(224, None, arch='dinov2-s', **SMALL)  # pretrain_size, img_size
    assert model.pos_embed.shape == (1, 14 * 14 + 1, 384)
    with pytest.raises(TypeError, match="unexpected keyword argument 'embed_dims'"):
        ViTAdapter(224, arch='dinov2-s', embed_dims=1)
