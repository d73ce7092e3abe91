"""The fake checkpoints' layouts (tests/fake_checkpoints.py, written key by key) equal those of the
naive official models (tests/reference), written independently: names, shapes, and the tensors that
are no weights (the k-bias mask, the RoPE periods)."""
import pytest
import torch

from tests import fake_checkpoints as fake
from tests.reference import dino_vit_naive


def _layout(state_dict):
    return {key: tuple(value.shape) for key, value in state_dict.items()}


@pytest.mark.parametrize('swiglu', [False, True], ids=['mlp', 'swiglu'])
def test_dinov2_reg4_layout_is_the_official_models(swiglu):
    ref = dino_vit_naive.NaiveDinov2RegViT(embed_dim=64, depth=2, num_heads=4, ffn='swiglu' if swiglu else 'mlp')
    assert _layout(fake.dinov2(64, depth=2, swiglu=swiglu, registers=4)) == _layout(ref.state_dict())


@pytest.mark.parametrize('swiglu, qkv_bias, local_cls_norm', [(False, True, False), (True, True, False),
                                                              (True, False, True)])
def test_dinov3_layout_is_the_official_models(swiglu, qkv_bias, local_cls_norm):
    ref = dino_vit_naive.NaiveDinov3ViT(embed_dim=64, depth=2, num_heads=4, ffn='swiglu' if swiglu else 'mlp',
                                        qkv_bias=qkv_bias, untie_global_and_local_cls_norm=local_cls_norm)
    ref = ref.state_dict()
    sd = fake.dinov3(64, depth=2, heads=4, swiglu=swiglu, qkv_bias=qkv_bias, local_cls_norm=local_cls_norm)
    assert _layout(sd) == _layout(ref)
    for key in [k for k in ref if k.endswith(('bias_mask', 'periods'))]:
        torch.testing.assert_close(sd[key], ref[key])


def test_dinov3_adapter_layout_is_the_official_models():
    vit = dino_vit_naive.NaiveDinov3ViT(embed_dim=64, depth=4, num_heads=4)
    ref = dino_vit_naive.NaiveDinov3Adapter(vit, interaction_indexes=[0, 1, 2, 3], conv_inplane=8, n_points=2,
                                            deform_num_heads=4).state_dict()
    assert _layout(fake.dinov3_adapter(ref, depth=4)) == _layout(ref)
