"""Building blocks against naive computations: attention, windows, SwiGLU, deformable sampling."""
import pytest
import torch
import torch.nn.functional as F
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch

from mmdet_dinov2.models.backbones.vit import Attention, build_ffn
from mmdet_dinov2.models.layers import MSDeformAttn, deform_attn_cpu
from mmdet_dinov2.models.layers.adapter import reference_points
from tests.reference import vit_adapter_naive as naive


def _grads(out, inputs, seed=0):
    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    return torch.autograd.grad((out * probe).sum(), inputs)


@pytest.mark.parametrize('window, hw', [(None, (6, 10)), (4, (8, 12)), (4, (6, 9)), (4, (9, 6)), (7, (5, 3)),
                                        (4, (3, 10))])
def test_attention_equals_naive_softmax_attention(window, hw):
    """Global, exact windows, partial windows (zero-padded q/k/v like the original's unfold): border
    strips on the right, at the bottom, both, a grid smaller than one window."""
    torch.manual_seed(0)
    ours = Attention(32, 4, window)
    ref = naive.NaiveAttention(32, 4, window)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, hw[0] * hw[1], 32, requires_grad=True)
    a, b = ours(x, hw), ref(x, *hw)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    params = [x, *ours.parameters()]
    for ga, gb in zip(_grads(a, params), _grads(b, [x, *ref.parameters()])):
        torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-5)


def test_padded_keys_take_part_in_the_softmax():
    """A window cut by the border keeps its zero keys: attention weights on real tokens sum below 1."""
    torch.manual_seed(0)
    attn = Attention(8, 1, window_size=4)
    with torch.no_grad():
        attn.proj.weight.copy_(torch.eye(8))
        attn.proj.bias.zero_()
        attn.qkv.bias.zero_()
    x = torch.zeros(1, 3 * 3, 8)  # 3x3 grid, one padded 4x4 window: 7 zero keys join 9 real ones
    x[..., :] = torch.randn(8)      # every token the same
    v = F.linear(x[0, 0], attn.qkv.weight[16:])
    out = attn(x, (3, 3))[0, 0]
    q, k = F.linear(x[0, 0], attn.qkv.weight[:8]), F.linear(x[0, 0], attn.qkv.weight[8:16])
    logit = (q @ k) / 8 ** 0.5
    real = 9 * logit.exp() / (9 * logit.exp() + 7)  # 7 padded keys with logit 0
    torch.testing.assert_close(out, real * v, rtol=1e-5, atol=1e-6)


def test_swiglu_is_dinov2s_fused_swiglu():
    """fc1 = DINOv2's w12 (dim -> 2 * hidden), fc2 = w3: w3(silu(x1) * x2), x1, x2 = w12(x).chunk(2)."""
    torch.manual_seed(0)
    ffn = build_ffn(1536, 4, 'swiglu')
    assert ffn.fc1.weight.shape == (2 * 4096, 1536) and ffn.fc2.weight.shape == (1536, 4096)
    x = torch.randn(3, 1536)
    x1, x2 = F.linear(x, ffn.fc1.weight, ffn.fc1.bias).chunk(2, dim=-1)
    want = F.linear(x1 * torch.sigmoid(x1) * x2, ffn.fc2.weight, ffn.fc2.bias)
    torch.testing.assert_close(ffn(x), want, rtol=1e-5, atol=1e-5)


def test_mlp_ffn_is_fc1_exact_gelu_fc2():
    ffn = build_ffn(8, 4, 'mlp')
    x = torch.randn(5, 8)
    h = F.linear(x, ffn.fc1.weight, ffn.fc1.bias)
    want = F.linear(0.5 * h * (1 + torch.erf(h / 2 ** 0.5)), ffn.fc2.weight, ffn.fc2.bias)
    torch.testing.assert_close(ffn(x), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('shapes, queries', [([(6, 8), (3, 4), (2, 2)], 7), ([(5, 9)], 11)])
def test_deform_attn_cpu_equals_mmcv_grid_sample_version(shapes, queries):
    g = torch.Generator().manual_seed(0)
    B, M, D, P, L = 2, 3, 4, 4, len(shapes)
    value = torch.randn(B, sum(h * w for h, w in shapes), M, D, generator=g, requires_grad=True)
    # some points outside [0, 1] (zero padding), some exactly on the border
    loc = torch.rand(B, queries, M, L, P, 2, generator=g) * 1.4 - 0.2
    loc[0, 0, 0, 0, 0] = torch.tensor([0.0, 1.0])
    loc.requires_grad_()
    weights = torch.rand(B, queries, M, L, P, generator=g, requires_grad=True)
    ours = deform_attn_cpu(value, shapes, loc, weights)
    ref = multi_scale_deformable_attn_pytorch(value, torch.tensor(shapes), loc, weights)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(_grads(ours, (value, loc, weights)), _grads(ref, (value, loc, weights))):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_msdeformattn_equals_naive_module():
    torch.manual_seed(0)
    ours = MSDeformAttn(24, num_heads=3, num_levels=2, num_points=2, deform_ratio=0.5)
    ref = naive.NaiveMSDeformAttn(24, 3, 2, 2, 0.5)
    for p in ours.parameters():  # the init zeroes offsets and weights: make them matter
        p.data.add_(torch.randn_like(p) * 0.3)
    ref.load_state_dict(ours.state_dict())
    shapes = [(4, 6), (2, 3)]
    query = torch.randn(2, 5, 24)
    feat = torch.randn(2, 30, 24)
    ref_pts = torch.rand(1, 5, 1, 2)
    torch.testing.assert_close(ours(query, ref_pts, feat, shapes), ref(query, ref_pts, feat, torch.tensor(shapes)),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match='spatial_shapes'):
        ours(query, ref_pts, feat, [(4, 6), (2, 2)])


def test_reference_points_are_cell_centres():
    pts = reference_points([(2, 3), (1, 2)])
    assert pts.shape == (1, 8, 1, 2)
    want = [[1 / 6, 1 / 4], [3 / 6, 1 / 4], [5 / 6, 1 / 4], [1 / 6, 3 / 4], [3 / 6, 3 / 4], [5 / 6, 3 / 4],
            [1 / 4, 1 / 2], [3 / 4, 1 / 2]]
    torch.testing.assert_close(pts[0, :, 0], torch.tensor(want))


def test_msdeformattn_under_bfloat16_autocast_samples_in_float32():
    torch.manual_seed(0)
    attn = MSDeformAttn(24, num_heads=3, num_levels=1, num_points=2)
    query, feat, ref_pts = torch.randn(1, 5, 24), torch.randn(1, 12, 24), torch.rand(1, 5, 1, 2)
    want = attn(query, ref_pts, feat, [(3, 4)])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = attn(query, ref_pts, feat, [(3, 4)])
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=0.05, atol=0.05)
