"""DINOv3 ViTs (and DINOv2 with registers) against naive official-layout references.

Each official architecture is built at its real width with 2 blocks (the 7B at a reduced width that
keeps its head width 128, its lack of qkv bias and its 64-aligned SwiGLU, plus the full 7B on the
meta device for names and shapes); random tensors in the official layout go through the project's
loader, and ``get_intermediate_layers`` is compared with the reference's.
"""
import math

import pytest
import torch

from mmdet_dinov2.checkpoints import load_backbone_weights
from mmdet_dinov2.checkpoints.convert.dinov3 import convert_dinov3
from mmdet_dinov2.models.backbones import DINOv3Adapter, ViT, ViTAdapter
from mmdet_dinov2.models.backbones.vit import Attention
from mmdet_dinov2.models.layers.rope import RopePositionEmbedding, apply_rope
from tests.fake_checkpoints import random_values
from tests.models.backbone_settings import DINOV3_HUB, dinov3_naive_kwargs, dinov3_vit_kwargs
from tests.reference import dino_vit_naive as dino_naive

TOL = 1e-4
# small widths for 7B: head width 128 as the real one (4096 / 32), no qkv bias, swiglu64
SMALL_7B = dict(embed_dim=512, num_heads=4)


def _pair(arch, tmp_path, depth=2, seed=0, **width):
    torch.manual_seed(seed)
    ref = dino_naive.NaiveDinov3ViT(**dinov3_naive_kwargs(arch, depth=depth, **width)).eval()
    state = random_values(ref.state_dict(), seed)
    ref.load_state_dict(state, strict=True)
    path = tmp_path / f'dinov3_{arch}.pth'
    torch.save(state, path)
    ours = ViT(**dinov3_vit_kwargs(arch, depth=depth, **width)).eval()
    report = load_backbone_weights(ours, path)
    return ours, ref, report


@pytest.mark.parametrize('arch', ['S', 'S+', 'B', 'L', 'H+', '7B'])
def test_intermediate_layers_equal_the_official_model(arch, tmp_path):
    width = SMALL_7B if arch == '7B' else {}
    ours, ref, report = _pair(arch, tmp_path, **width)
    # every tensor of the file is used or explained; every model tensor comes from the file
    assert report['missing'] == {}
    assert set(report['unused']) <= {'local_cls_norm.weight', 'local_cls_norm.bias'}
    img = torch.randn(2, 3, 64, 112, generator=torch.Generator().manual_seed(1))
    worst = 0.0
    with torch.no_grad():
        for n, norm in ((1, True), ([0, 1], True), (2, False)):
            got = ours.get_intermediate_layers(img, n=n, norm=norm)
            want = ref.get_intermediate_layers(img, n=n, reshape=True, norm=norm)
            assert len(got) == len(want)
            for a, b in zip(got, want):
                assert a.shape == b.shape == (2, ours.embed_dim, 4, 7)
                worst = max(worst, (a - b).abs().max().item())
                assert b.abs().max() > 0.5
    print(f'DINOv3 {arch}: max |ours - official| = {worst:.2e}')
    assert worst <= TOL, (arch, worst)


def test_7b_names_and_shapes_on_meta():
    """The full 7B: our model takes every converted official tensor with its shape."""
    with torch.device('meta'):
        official = dino_naive.NaiveDinov3ViT(**dinov3_naive_kwargs('7B')).state_dict()
        ours = ViT(**dinov3_vit_kwargs('7B')).state_dict()
    converted, _ = convert_dinov3(official)
    unused = set(converted) - set(ours)
    assert unused == {'local_cls_norm.weight', 'local_cls_norm.bias'}
    assert set(ours) == set(converted) - unused
    assert all(ours[k].shape == converted[k].shape for k in ours)
    assert 'blocks.0.attn.qkv.bias' not in ours and 'blocks.39.mlp.fc1.weight' in ours
    assert ours['blocks.0.mlp.fc1.weight'].shape == (2 * 8192, 4096)


def test_adapter_with_dinov3_vit_runs_and_trains_the_tokens():
    vit = dinov3_vit_kwargs('S', embed_dim=64, num_heads=4, depth=4)
    model = ViTAdapter(**vit, conv_inplane=8, deform_num_heads=4, n_points=2,
                       interaction_indexes=[[0, 0], [1, 1], [2, 2], [3, 3]], norm_cfg=dict(type='BN'),
                       window_attn=[True, False, True, False], window_size=[3, None, 3, None])
    outs = model(torch.randn(1, 3, 96, 64))
    assert [o.shape[-2:] for o in outs] == [(24, 16), (12, 8), (6, 4), (3, 2)]
    sum(o.sum() for o in outs).backward()
    assert model.cls_token.grad.abs().sum() > 0 and model.register_tokens.grad.abs().sum() > 0
    assert not model.norm.weight.requires_grad  # final norm: only for get_intermediate_layers


def test_rope_is_off_in_eval_and_perturbed_in_training():
    rope = RopePositionEmbedding(64, 4, base=100.0, rescale_coords=2.0, jitter_coords=None)
    rope.eval()
    a, b = rope(3, 5), rope(3, 5)
    assert torch.equal(a[0], b[0])
    rope.train()
    torch.manual_seed(0)
    assert not torch.equal(rope(3, 5)[0], a[0])


def _naive_windowed_attention(attn, x, hw, sincos, P, ws):
    """Explicit loops: rotate q, k on the whole grid, pad q, k, v with zeros, each window's queries
    see its ws*ws keys (padding included) and the P prefix keys; prefix queries see all real tokens."""
    B, N, C = x.shape
    H, W = hw
    heads, d = attn.num_heads, C // attn.num_heads
    qkv = attn.qkv(x).view(B, N, 3, heads, d)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # (B, heads, N, d)
    sin, cos = sincos
    q = torch.cat([q[:, :, :P], apply_rope(q[:, :, P:], sin, cos)], 2)
    k = torch.cat([k[:, :, :P], apply_rope(k[:, :, P:], sin, cos)], 2)

    def softmax_attend(q_, k_, v_):
        w = torch.softmax(q_ @ k_.transpose(-2, -1) / math.sqrt(d), -1)
        return w @ v_

    out = torch.zeros(B, heads, N, d)
    out[:, :, :P] = softmax_attend(q[:, :, :P], k, v)
    Hp, Wp = -(-H // ws) * ws, -(-W // ws) * ws

    def grid(t):
        g = torch.zeros(B, heads, Hp, Wp, d)
        g[:, :, :H, :W] = t[:, :, P:].reshape(B, heads, H, W, d)
        return g
    qg, kg, vg = grid(q), grid(k), grid(v)
    og = torch.zeros(B, heads, Hp, Wp, d)
    for top in range(0, Hp, ws):
        for left in range(0, Wp, ws):
            win = (slice(None), slice(None), slice(top, top + ws), slice(left, left + ws))
            qw, kw, vw = (t[win].reshape(B, heads, ws * ws, d) for t in (qg, kg, vg))
            kw, vw = torch.cat([kw, k[:, :, :P]], 2), torch.cat([vw, v[:, :, :P]], 2)
            og[win] = softmax_attend(qw, kw, vw).reshape(B, heads, ws, ws, d)
    out[:, :, P:] = og[:, :, :H, :W].reshape(B, heads, H * W, d)
    return attn.proj(out.transpose(1, 2).reshape(B, N, C))


@pytest.mark.parametrize('hw', [(6, 6), (5, 7)])
def test_windowed_attention_with_prefix_tokens_and_global_rope(hw):
    """Windows keep global RoPE coordinates; prefix tokens: see module docstring of vit.py."""
    torch.manual_seed(0)
    attn = Attention(32, 4, window_size=3, mask_k_bias=True)
    rope = RopePositionEmbedding(32, 4).eval()
    P = 5
    x = torch.randn(2, P + hw[0] * hw[1], 32)
    sincos = rope(*hw)
    with torch.no_grad():
        got = attn(x, hw, sincos, P)
        want = _naive_windowed_attention(attn, x, hw, sincos, P, 3)
    assert (got - want).abs().max() <= 1e-5


@pytest.mark.parametrize('ffn', ['mlp', 'swiglu'])  # ViT-S/B/L, ViT-g (fused SwiGLU w12/w3)
def test_reg4_patch_tokens_equal_official_dinov2_reg4(ffn, tmp_path):
    """At patch 14 on the 37x37 pre-training grid (518 px), where neither model resizes the position
    embedding: the class token with its position slot, the 4 registers and the patch tokens go
    through the blocks as in DINOv2. The 14 -> 16 conversion changes only the patch kernel (tested in
    tests/checkpoints), so the ViT-Adapter at patch 16 runs these same blocks and tokens."""
    torch.manual_seed(0)
    ref = dino_naive.NaiveDinov2RegViT(embed_dim=64, depth=2, num_heads=4, ffn=ffn).eval()
    state = random_values(ref.state_dict())
    ref.load_state_dict(state, strict=True)
    path = tmp_path / 'dinov2_vits14_reg4_pretrain.pth'
    torch.save(state, path)
    ours = ViT(pretrain_size=518, patch_size=14, embed_dim=64, depth=2, num_heads=4, ffn_type=ffn,
               with_cls_token=True, num_register_tokens=4, final_norm=True).eval()
    report = load_backbone_weights(ours, path)
    assert report['missing'] == {} and report['unused'] == {}
    assert any('dropped mask_token' in note for note in report['notes'])
    img = torch.randn(1, 3, 518, 518, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for n, norm in ((1, True), ([0, 1], False)):
            got = ours.get_intermediate_layers(img, n=n, norm=norm)
            want = ref.get_intermediate_layers(img, n=n, norm=norm)
            for a, b in zip(got, want):
                assert a.shape == b.shape == (1, 64, 37, 37)
                assert (a - b).abs().max() <= TOL, (a - b).abs().max().item()


def test_get_intermediate_layers_refuses_bad_requests():
    vit = ViT(embed_dim=32, depth=2, num_heads=4)
    with pytest.raises(ValueError, match='block indices'):
        vit.get_intermediate_layers(torch.randn(1, 3, 32, 32), n=[2])
    with pytest.raises(ValueError, match='final_norm=True'):
        vit.get_intermediate_layers(torch.randn(1, 3, 32, 32), n=1, norm=True)


@pytest.mark.parametrize('size, arch', [('s', 'S'), ('b', 'B'), ('l', 'L')])
def test_dinov3_configs_build_the_hub_vit(size, arch):
    """The config's ViT is the hub's: every ViT argument equals the hub table's."""
    import inspect

    from mmengine.config import Config

    from mmdet_dinov2.models.backbones.archs import expand_arch
    cfg = Config.fromfile(f'configs/vit_adapter/mask-rcnn_dinov3-adapter-{size}_fpn_3x_coco.py')
    defaults = {k: p.default for k, p in inspect.signature(ViTAdapter).parameters.items()}
    backbone = dict(defaults, **expand_arch(cfg.model.backbone))  # the arch preset's keys
    for key, value in dinov3_vit_kwargs(arch).items():
        if key == 'rope_cfg':
            assert {k: backbone[key][k] for k in value} == value
        else:
            assert backbone[key] == value, key
    with torch.device('meta'):
        model = ViTAdapter(**{k: v for k, v in cfg.model.backbone.items() if k not in ('type', 'pretrained')})
    head_dim = model.embed_dim // backbone['num_heads']
    assert model.num_prefix_tokens == 5 and model.rope_embed.periods.shape == (head_dim // 4,)


@pytest.mark.parametrize('size', ['s', 'b', 'l', 'g'])
def test_reg4_configs_carry_the_registers(size):
    from mmengine.config import Config
    reg4 = Config.fromfile(f'configs/vit_adapter/mask-rcnn_dinov2-reg4-adapter-{size}_fpn_3x_coco.py').model.backbone
    plain = Config.fromfile(f'configs/vit_adapter/mask-rcnn_dinov2-adapter-{size}_fpn_3x_coco.py').model.backbone
    changed = {k for k in reg4 if reg4[k] != plain.get(k)}
    assert changed == {'with_cls_token', 'num_register_tokens', 'final_norm', 'pretrained'}
    assert reg4.num_register_tokens == 4 and f'vit{size}14_reg4' in reg4.pretrained


def _frozen_pair(arch='S', **width):
    """Ours in frozen-adapter mode and the naive official DINOv3_Adapter, same official weights."""
    torch.manual_seed(0)
    vit = dino_naive.NaiveDinov3ViT(**dinov3_naive_kwargs(arch, depth=4, **width))
    ref = dino_naive.NaiveDinov3Adapter(vit, interaction_indexes=[0, 1, 2, 3], conv_inplane=8, n_points=2,
                                        deform_num_heads=4, deform_ratio=0.5).eval()
    state = random_values(ref.state_dict(), seed=3)
    for key in state:
        if key.endswith('running_var'):
            state[key] = state[key].abs() + 0.5
    ref.load_state_dict(state, strict=True)
    hub = DINOV3_HUB[arch]
    ours = DINOv3Adapter(embed_dim=width.get('embed_dim', hub['embed_dim']),
                         num_heads=width.get('num_heads', hub['num_heads']), depth=4, mlp_ratio=hub['ffn_ratio'],
                         ffn_type=hub['ffn'], qkv_bias=hub['qkv_bias'], interaction_indexes=[0, 1, 2, 3],
                         conv_inplane=8, n_points=2, deform_num_heads=4, deform_ratio=0.5,
                         norm_cfg=dict(type='BN'))
    return ours, ref, state



def _outputs_agree(ours, ref, seed, label):
    """Both models on one random (2, 3, 96, 128) batch: same map shapes, max |difference| <= TOL;
    returns the reference's maps."""
    img = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        got, want = ours(img), ref(img)
    worst = max((a - b).abs().max().item() for a, b in zip(got, want))
    print(f'{label}: max |difference| = {worst:.2e}')
    assert [a.shape for a in got] == [b.shape for b in want] and worst <= TOL
    return want

@pytest.mark.parametrize('arch', ['S', '7B'])
def test_frozen_adapter_equals_the_official_dinov3_adapter(arch):
    width = dict(embed_dim=64, num_heads=4) if arch == 'S' else dict(embed_dim=256, num_heads=2)
    ours, ref, state = _frozen_pair(arch, **width)
    result = ours.load_state_dict(dict(state), strict=True)  # the official keys, strictly
    assert not result.missing_keys and not result.unexpected_keys
    ours.eval()
    _outputs_agree(ours, ref, seed=4, label=f'DINOv3Adapter ({arch} layout) vs official')


def test_frozen_adapter_trains_only_the_adapter():
    ours, _, state = _frozen_pair(embed_dim=64, num_heads=4)
    ours.load_state_dict(state)
    ours.train()
    assert not ours.blocks.training and not ours.rope_embed.training and ours.spm.training
    frozen = {n for n, p in ours.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in ours.named_parameters() if n.startswith(
        ('patch_embed.', 'blocks.', 'cls_token', 'register_tokens', 'norm.'))}
    outs = ours(torch.randn(1, 3, 64, 64))
    sum(o.sum() for o in outs).backward()
    assert all(p.grad is None for n, p in ours.named_parameters() if n in frozen)
    assert ours.level_embed.grad is not None and ours.interactions[3].extra_extractors[1].attn.value_proj.weight.grad \
        is not None


@pytest.mark.parametrize('size', ['s', 'l', '7b'])
def test_frozen_adapter_configs_build_on_meta_with_only_the_adapter_trainable(size):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(f'configs/vit_adapter/mask-rcnn_dinov3-frozen-adapter-{size}_fpn_3x_coco.py')
    cfg.model.backbone.update(pretrained=None)
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    backbone = model.backbone
    assert backbone.vit_dtype == 'bfloat16' and all(b.extractor.with_cp for b in backbone.interactions)
    vit = sum(p.numel() for p in backbone.vit_parameters())
    assert all(not p.requires_grad for p in backbone.vit_parameters())
    if size == '7b':
        assert 6.5e9 < vit < 7.0e9, vit  # the 7B's ~6.7 billion parameters
    with DefaultScope.overwrite_default_scope('mmdet'):
        optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g['params']}
    assert not any(id(p) in in_optimizer for p in backbone.vit_parameters())
    assert all(g['lr'] == cfg.optim_wrapper.optimizer.lr for g in optimizer.param_groups)


def test_gradients_equal_the_official_model(tmp_path):
    """float64, S+ layout (SwiGLU) at width 64: gradients of the input, the class and storage tokens,
    a qkv projection (with its masked bias) and the stacked SwiGLU input weights (eval mode: the
    official model perturbs RoPE coordinates in training, at random)."""
    ours, ref, _ = _pair('S+', tmp_path, embed_dim=64, num_heads=4)
    ours.double(), ref.double()
    img = torch.randn(1, 3, 48, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    grads = []
    for model, params in ((ours, [ours.cls_token, ours.register_tokens, ours.blocks[1].attn.qkv.weight,
                                  ours.blocks[1].attn.qkv.bias, ours.blocks[0].mlp.fc1.weight]),
                          (ref, [ref.cls_token, ref.storage_tokens, ref.blocks[1].attn.qkv.weight,
                                 ref.blocks[1].attn.qkv.bias, ref.blocks[0].mlp.w1.weight,
                                 ref.blocks[0].mlp.w2.weight])):
        x = img.clone().requires_grad_(True)
        out = model.get_intermediate_layers(x, n=[0, 1], norm=True)
        probe = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() for o in out)
        grads.append(torch.autograd.grad(probe, [x, *params]))
    got, want = grads
    want = [*want[:5], torch.cat(want[5:])]  # w1 and w2 stacked as our fc1
    # order: image, class token, register / storage tokens, qkv weight, qkv bias, fc1 / w1+w2
    # 1e-6, not 1e-12: RoPE runs in float32 in both official and ours (the naive one in float64)
    for a, b in zip(got, want):
        assert a.shape == b.shape and (a - b).abs().max() <= 1e-6 * max(1.0, b.abs().max().item())
    assert (got[5] != 0).any()
    assert (got[4][64:128] == 0).all() and (got[4][:64] != 0).any()  # the masked k bias gets no gradient


def test_trainable_adapter_on_dinov3_equals_the_naive_reference():
    """ViT-Adapter (injectors, extractors) around a DINOv3 ViT with windowed blocks: the class and
    storage tokens follow the rule of vit.py's docstring, written there as one masked softmax over a
    zero-padded grid; windows of 4 on a 6x8 grid need padding."""
    windows = [4, None, 4, None]
    idx = [[0, 0], [1, 1], [2, 2], [3, 3]]
    torch.manual_seed(0)
    ref = dino_naive.NaiveDinov3ViTAdapter(dinov3_naive_kwargs('S+', depth=4, embed_dim=64, num_heads=4), windows, idx)
    state = random_values(ref.state_dict(), seed=6)
    for key in state:
        if key.endswith('running_var'):
            state[key] = state[key].abs() + 0.5
    ref.load_state_dict(state, strict=True)
    ours = ViTAdapter(**dinov3_vit_kwargs('S+', depth=4, embed_dim=64, num_heads=4), conv_inplane=8, n_points=2,
                      deform_num_heads=4, interaction_indexes=idx, window_attn=[w is not None for w in windows],
                      window_size=windows, norm_cfg=dict(type='BN'))
    ours.load_state_dict(convert_dinov3(state)[0], strict=True)
    ours.eval(), ref.eval()
    want = _outputs_agree(ours, ref, seed=7, label='ViTAdapter on DINOv3 (S+ layout, windows) vs naive')
    assert max(b.abs().max().item() for b in want) > 1.0


def test_adapter_backbone_gives_the_official_intermediate_layers(tmp_path):
    """get_intermediate_layers on the ViTAdapter backbone itself (global attention), after loading the
    official file through init_weights."""
    ref = dino_naive.NaiveDinov3ViT(**dinov3_naive_kwargs('B', depth=2, embed_dim=96, num_heads=4)).eval()
    state = random_values(ref.state_dict(), seed=8)
    ref.load_state_dict(state)
    path = tmp_path / 'dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth'
    torch.save(state, path)
    backbone = ViTAdapter(**dinov3_vit_kwargs('B', depth=2, embed_dim=96, num_heads=4), conv_inplane=8, n_points=2,
                          deform_num_heads=4, interaction_indexes=[[0, 0], [1, 1]], norm_cfg=dict(type='BN'),
                          pretrained=str(path))
    backbone.init_weights()
    backbone.eval()
    img = torch.randn(1, 3, 80, 48)
    with torch.no_grad():
        got = backbone.get_intermediate_layers(img, n=1, norm=True)
        want = ref.get_intermediate_layers(img, n=1, reshape=True, norm=True)
    assert got[0].shape == want[0].shape == (1, 96, 5, 3)
    assert (got[0] - want[0]).abs().max() <= TOL


def test_freeze_vit_keeps_rope_in_eval_mode():
    vit = dinov3_vit_kwargs('S', embed_dim=32, num_heads=2, depth=2)
    model = ViTAdapter(**vit, conv_inplane=8, deform_num_heads=2, n_points=1, freeze_vit=True,
                       interaction_indexes=[[0, 0], [1, 1]], norm_cfg=dict(type='BN')).train()
    assert not model.rope_embed.training and model.spm.training


def test_adapter_with_reg4_vit_runs_and_trains_the_tokens():
    model = ViTAdapter(pretrain_size=64, embed_dim=32, depth=2, num_heads=2, conv_inplane=8, deform_num_heads=2,
                       n_points=1, with_cls_token=True, num_register_tokens=4, final_norm=True,
                       interaction_indexes=[[0, 0], [1, 1]], window_attn=[True, False], window_size=[3, None],
                       norm_cfg=dict(type='BN'))
    outs = model(torch.randn(1, 3, 64, 96))
    sum(o.sum() for o in outs).backward()
    assert model.cls_token.grad.abs().sum() > 0 and model.register_tokens.grad.abs().sum() > 0
    assert model.pos_embed.grad[0, 0].abs().sum() > 0  # the class slot of the position embedding is used


def test_frozen_adapter_loads_through_init_cfg(tmp_path):
    ours, _, state = _frozen_pair(embed_dim=64, num_heads=4)
    path = tmp_path / 'dinov3_adapter.pth'
    torch.save(state, path)
    model = DINOv3Adapter(embed_dim=64, num_heads=4, depth=4, interaction_indexes=[0, 1, 2, 3], conv_inplane=8,
                          n_points=2, deform_num_heads=4, norm_cfg=dict(type='BN'),
                          init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert torch.equal(model.blocks[2].gamma2, state['backbone.blocks.2.ls2.gamma'])
    assert torch.equal(model.level_embed, state['level_embed'])
