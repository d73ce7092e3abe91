"""The pure state-dict functions: format detection and DINOv2 -> ViTAdapter conversion."""
import pytest
import torch
import torch.nn.functional as F
from timm.layers import resample_patch_embed

from mmdet_dinov2.checkpoints import (
    convert_dinov2,
    detect_format,
    resample_patch_embed_kernel,
    strip_prefix,
)
from tests import fake_checkpoints as fake

BLOCK_PARAMS = ['norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.qkv.bias',
                'attn.proj.weight', 'attn.proj.bias', 'gamma1', 'norm2.weight', 'norm2.bias',
                'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias', 'gamma2']


def _expected_keys(depth, registers=False):
    keys = {'cls_token', 'pos_embed', 'patch_embed.proj.weight', 'patch_embed.proj.bias',
            'norm.weight', 'norm.bias'}
    keys |= {f'blocks.{i}.{name}' for i in range(depth) for name in BLOCK_PARAMS}
    return keys | ({'register_tokens'} if registers else set())


def test_convert_vits_keys_shapes_values(vits_state_dict):
    sd = vits_state_dict
    out, notes = convert_dinov2(sd)
    assert set(out) == _expected_keys(depth=2)
    assert out['patch_embed.proj.weight'].shape == (384, 3, 16, 16)
    expected_kernel = F.interpolate(sd['patch_embed.proj.weight'], size=(16, 16), mode='bilinear',
                                    align_corners=False)
    assert torch.equal(out['patch_embed.proj.weight'], expected_kernel)
    for i in range(2):
        assert torch.equal(out[f'blocks.{i}.gamma1'], sd[f'blocks.{i}.ls1.gamma'])
        assert torch.equal(out[f'blocks.{i}.gamma2'], sd[f'blocks.{i}.ls2.gamma'])
    for key in ('pos_embed', 'cls_token', 'blocks.1.attn.qkv.weight', 'blocks.0.mlp.fc2.bias',
                'patch_embed.proj.bias', 'norm.weight'):
        assert torch.equal(out[key], sd[key]), key
    text = '\n'.join(notes)
    assert 'patch_embed.proj.weight 14x14 -> 16x16 (bilinear)' in text
    assert 'ls1.gamma -> blocks.*.gamma1' in text and 'dropped mask_token' in text
    assert 'register_tokens' not in text
    assert 'mask_token' in sd  # the input is not modified


def test_convert_vitg_swiglu_real_widths():
    sd = fake.dinov2(1536, depth=1, swiglu=True)
    assert sd['blocks.0.mlp.w12.weight'].shape == (8192, 1536)  # the official ViT-g widths
    assert sd['blocks.0.mlp.w3.weight'].shape == (1536, 4096)
    out, notes = convert_dinov2(sd)
    assert set(out) == _expected_keys(depth=1)
    for suffix in ('weight', 'bias'):
        assert torch.equal(out[f'blocks.0.mlp.fc1.{suffix}'], sd[f'blocks.0.mlp.w12.{suffix}'])
        assert torch.equal(out[f'blocks.0.mlp.fc2.{suffix}'], sd[f'blocks.0.mlp.w3.{suffix}'])
    assert any('mlp.w12 -> blocks.*.mlp.fc1' in note for note in notes)


def test_convert_reg4_keeps_and_reports_register_tokens():
    sd = fake.dinov2(384, depth=1, registers=4)
    out, notes = convert_dinov2(sd)
    assert set(out) == _expected_keys(depth=1, registers=True)
    assert torch.equal(out['register_tokens'], sd['register_tokens'])
    assert any('register_tokens (1, 4, 384)' in note for note in notes)


def test_convert_unchunks_blocks():
    chunked = fake.dinov2(384, depth=4, block_chunks=2, seed=1)
    assert 'blocks.1.3.ls1.gamma' in chunked
    out, notes = convert_dinov2(chunked)
    assert set(out) == _expected_keys(depth=4)
    assert torch.equal(out['blocks.3.gamma1'], chunked['blocks.1.3.ls1.gamma'])
    assert any('unchunked' in note for note in notes)


def test_pinv_is_timms_resample_and_keeps_patch_embedding(vits_state_dict):
    kernel = vits_state_dict['patch_embed.proj.weight']
    out, notes = convert_dinov2(vits_state_dict, method='pinv')
    new = out['patch_embed.proj.weight']
    assert torch.equal(new, resample_patch_embed(kernel, [16, 16], interpolation='bilinear',
                                                 antialias=False))
    assert any('(pinv)' in note for note in notes)
    # FlexiViT's property: <resize(patch), new kernel> == <patch, old kernel> for any patch.
    patches = torch.randn(5, 3, 14, 14, generator=torch.Generator().manual_seed(0))
    resized = F.interpolate(patches, size=(16, 16), mode='bilinear', align_corners=False)
    reference = F.conv2d(patches.double(), kernel.double())
    torch.testing.assert_close(F.conv2d(resized.double(), new.double()), reference,
                               rtol=1e-4, atol=1e-4 * reference.abs().max().item())


def test_resample_to_same_size_and_bad_input(vits_state_dict):
    kernel = vits_state_dict['patch_embed.proj.weight']
    assert resample_patch_embed_kernel(kernel, 14) is kernel
    assert resample_patch_embed_kernel(kernel, (8, 8)).shape == (384, 3, 8, 8)
    with pytest.raises(ValueError, match="unknown resampling method 'nearest'"):
        resample_patch_embed_kernel(kernel, 16, 'nearest')
    with pytest.raises(ValueError, match=r'must be 4-D.*\(384, 3\)'):
        resample_patch_embed_kernel(kernel[:, :, 0, 0], 16)


def test_detect_format(vits_state_dict):
    sd = vits_state_dict
    converted, _ = convert_dinov2(sd)
    assert detect_format(sd) == 'dinov2'
    assert detect_format(converted) == 'dinov2_converted'
    adapter = {**converted, 'level_embed': torch.zeros(3, 384), 'spm.stem.0.weight': torch.zeros(1)}
    assert detect_format(adapter) == 'vit_adapter_backbone'
    detector = {'backbone.' + k: v for k, v in adapter.items()}
    detector['neck.lateral_convs.0.conv.weight'] = torch.zeros(1)
    assert detect_format(detector) == 'vit_adapter_detector'
    assert strip_prefix(detector).keys() == adapter.keys()
    with pytest.raises(ValueError, match="no key starts with 'head.'"):
        strip_prefix(detector, 'head.')


def _resnet():
    return {'conv1.weight': torch.zeros(64, 3, 7, 7), 'bn1.weight': torch.zeros(64),
            'layer1.0.conv1.weight': torch.zeros(64, 64, 1, 1), 'fc.weight': torch.zeros(10, 64)}


@pytest.mark.parametrize('prefix', ['', 'backbone.'])
def test_detect_format_rejects_other_families(prefix):
    sd = {prefix + k: v for k, v in _resnet().items()}
    with pytest.raises(ValueError, match=r'not a DINOv2/ViT-Adapter checkpoint.*conv1\.weight'):
        detect_format(sd)


def test_convert_refuses_converted_and_foreign(vits_state_dict):
    converted, _ = convert_dinov2(vits_state_dict)
    with pytest.raises(ValueError, match='already converted'):
        convert_dinov2(converted)
    with pytest.raises(ValueError, match='not a DINOv2/ViT-Adapter checkpoint'):
        convert_dinov2(_resnet())


def test_converted_swiglu_computes_dinov2s_ffn():
    """timm's GluMlp(gate_last=False) with the renamed weights = DINOv2's silu(x W1) * (x W2) W3."""
    from timm.layers import GluMlp
    sd = fake.dinov2(48, depth=1, swiglu=True)
    out, _ = convert_dinov2(sd)
    hidden = sd['blocks.0.mlp.w3.weight'].shape[1]
    mlp = GluMlp(48, 2 * hidden, act_layer=torch.nn.SiLU, gate_last=False)
    mlp.load_state_dict({k[len('blocks.0.mlp.'):]: v for k, v in out.items()
                         if k.startswith('blocks.0.mlp.')})
    x = torch.randn(2, 5, 48, generator=torch.Generator().manual_seed(0))
    x12 = F.linear(x, sd['blocks.0.mlp.w12.weight'], sd['blocks.0.mlp.w12.bias'])
    x1, x2 = x12.chunk(2, dim=-1)
    expected = F.linear(F.silu(x1) * x2, sd['blocks.0.mlp.w3.weight'], sd['blocks.0.mlp.w3.bias'])
    torch.testing.assert_close(mlp(x), expected)
