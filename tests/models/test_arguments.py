"""Constructor arguments that cannot work are refused up front, naming the argument and the value.

One parametrised test per argument family. The checks run before any layer is built, so every
case here is fast.
"""
import pytest

from mmdet_dinov2.models.backbones import ViT, ViTAdapter

# a valid tiny adapter; each case changes one argument
TINY = dict(pretrain_size=64, embed_dim=32, depth=2, num_heads=2, mlp_ratio=4, conv_inplane=8, n_points=2,
            deform_num_heads=2, deform_ratio=1.0, cffn_ratio=0.25, interaction_indexes=[[0, 0], [1, 1]],
            norm_cfg=dict(type='BN'))


def _refused(error, **change):
    with pytest.raises(error) as info:
        ViTAdapter(**dict(TINY, **change))
    return str(info.value)


def test_the_tiny_config_builds():
    assert len(ViTAdapter(**TINY).interactions) == 2


@pytest.mark.parametrize('name', ['embed_dim', 'depth', 'num_heads', 'n_points', 'conv_inplane',
                                  'deform_num_heads', 'pretrain_size'])
@pytest.mark.parametrize('value, error', [
    (0, ValueError), (-2, ValueError),
    (2.0, TypeError), (True, TypeError), ('2', TypeError), (None, TypeError),
])
def test_sizes_must_be_positive_integers(name, value, error):
    message = _refused(error, **{name: value})
    assert f'{name}={value!r}' in message and 'positive integer' in message, message


@pytest.mark.parametrize('change, words', [
    (dict(num_heads=3), ['embed_dim=32', 'num_heads=3', 'divisible']),
    (dict(deform_num_heads=3), ['deform_num_heads=3', 'embed_dim=32']),
    (dict(embed_dim=30, num_heads=3, deform_num_heads=4), ['deform_num_heads=4', 'embed_dim=30']),
    (dict(pretrain_size=8), ['pretrain_size=8', 'patch_size=16']),
])
def test_widths_must_split_into_heads(change, words):
    message = _refused(ValueError, **change)
    assert all(word in message for word in words), message


@pytest.mark.parametrize('name', ['mlp_ratio', 'cffn_ratio', 'deform_ratio'])
@pytest.mark.parametrize('value, error', [
    (0, ValueError), (0.0, ValueError), (-0.5, ValueError), (float('nan'), ValueError),
    (float('inf'), ValueError), (True, TypeError), ('4', TypeError), (None, TypeError),
])
def test_ratios_must_be_positive_numbers(name, value, error):
    message = _refused(error, **{name: value})
    assert f'{name}={value!r}' in message, message


@pytest.mark.parametrize('change, name, words', [
    # the widths the ratios give: 32 * 0.01 -> 0 channels
    (dict(mlp_ratio=0.01), 'mlp_ratio', ['embed_dim=32', 'hidden width of 0']),
    # SwiGLU takes 2/3 of int(32 * 0.04) = 1 channel: 0
    (dict(mlp_ratio=0.04, ffn_type='swiglu'), 'mlp_ratio', ['hidden width of 0']),
    (dict(cffn_ratio=0.01), 'cffn_ratio', ['int(32 * 0.01)', 'is 0']),
    (dict(deform_ratio=0.01), 'deform_ratio', ['int(32 * 0.01) = 0', 'deform_num_heads=2']),
    (dict(deform_ratio=0.3), 'deform_ratio', ['int(32 * 0.3) = 9', 'deform_num_heads=2']),
])
def test_ratios_must_give_usable_widths(change, name, words):
    message = _refused(ValueError, **change)
    assert f'{name}={change[name]!r}' in message, message
    assert all(word in message for word in words), message


def test_cffn_ratio_is_unused_without_cffn():
    model = ViTAdapter(**dict(TINY, with_cffn=False, cffn_ratio=0))
    assert model.interactions[0].extractor.ffn is None


@pytest.mark.parametrize('value', [
    [[0, 0], [1, 2]],            # past the last block
    [[0, 0]],                    # misses block 1
    [[1, 1], [0, 0]],            # not in order
    [[0, 1], [1, 1]],            # overlapping
    [[0, 1], [2, 1]],            # empty group
    [[-1, 0], [1, 1]],           # negative
    [[0.0, 0.0], [1.0, 1.0]],    # floats
    [[False, False], [True, True]],
    [[0, 0, 1], [1, 1]],
    [0, 1],
    None,
    'all',
])
def test_interaction_indexes_must_cover_the_blocks_in_order(value):
    message = _refused(ValueError, interaction_indexes=value)
    assert f'interaction_indexes={value!r}' in message and 'depth=2' in message, message


@pytest.mark.parametrize('value', [(0, 4), (-1, 0), (), (1, 0), (0, 0), (0.0, 1.0), (True,), 3, None, '0123'])
def test_out_indices_must_be_increasing_map_indices(value):
    message = _refused(ValueError, out_indices=value)
    assert f'out_indices={value!r}' in message and '0..3' in message, message


@pytest.mark.parametrize('value', [(0, 1, 2, 3), [1, 3], (2,)])
def test_valid_out_indices_are_kept_as_a_tuple(value):
    assert ViTAdapter(**dict(TINY, out_indices=value)).out_indices == tuple(value)


@pytest.mark.parametrize('value, error', [(1.0, ValueError), (-0.1, ValueError), ('0.1', TypeError),
                                          (True, TypeError)])
def test_drop_path_rate_must_be_in_0_1(value, error):
    message = _refused(error, drop_path_rate=value)
    assert f'drop_path_rate={value!r}' in message, message


@pytest.mark.parametrize('change, error, words', [
    (dict(depth=0), ValueError, ['depth=0']),
    (dict(num_heads=2.0), TypeError, ['num_heads=2.0']),
    (dict(embed_dim=32, num_heads=5), ValueError, ['embed_dim=32', 'num_heads=5']),
    (dict(mlp_ratio=0), ValueError, ['mlp_ratio=0']),
])
def test_the_plain_vit_checks_its_own_arguments(change, error, words):
    cfg = dict(dict(pretrain_size=64, embed_dim=32, depth=2, num_heads=2), **change)
    with pytest.raises(error) as info:
        ViT(**cfg)
    assert all(word in str(info.value) for word in words), str(info.value)
