"""Deformable attention on mmcv's CUDA kernel against this project's CPU path (an independent
implementation: an embedding bag over bilinear corners), and its behaviour under autocast."""
import pytest
import torch

from mmdet_dinov2.models.layers import ms_deform_attn
from mmdet_dinov2.models.layers.ms_deform_attn import MSDeformAttn, deform_attn, deform_attn_cpu

SHAPES = [(32, 40), (16, 20), (8, 10)]


def _inputs(seed=0, batch=2, queries=300, heads=6, dim=32, points=4):
    g = torch.Generator().manual_seed(seed)
    tokens = sum(h * w for h, w in SHAPES)
    value = torch.randn(batch, tokens, heads, dim, generator=g)
    # some points fall outside the maps: zero padding must agree too
    loc = torch.rand(batch, queries, heads, len(SHAPES), points, 2, generator=g) * 1.2 - 0.1
    weights = torch.rand(batch, queries, heads, len(SHAPES), points, generator=g).softmax(-1)
    return value, loc, weights


def _forward_backward(value, loc, weights, fn):
    value, loc, weights = (t.clone().requires_grad_() for t in (value, loc, weights))
    out = fn(value=value, spatial_shapes=SHAPES, sampling_locations=loc, attention_weights=weights)
    g = torch.Generator().manual_seed(1)
    out.backward(torch.randn(out.shape, generator=g).to(out.device))  # a non-uniform upstream gradient
    return out, value.grad, loc.grad, weights.grad


def test_cuda_kernel_matches_cpu_path_fp32(relative_error):
    value, loc, weights = _inputs()
    ref = _forward_backward(value, loc, weights, deform_attn_cpu)
    got = _forward_backward(value.cuda(), loc.cuda(), weights.cuda(), deform_attn)
    for name, g, r in zip(('output', 'grad value', 'grad sampling_locations', 'grad attention_weights'),
                          got, ref):
        assert g.is_cuda and g.dtype == torch.float32
        assert relative_error(g, r) <= 1e-5, f'{name}: relative error {relative_error(g, r):.2e}'


class _RecordDtypes:
    """Stands in for mmcv's MultiScaleDeformableAttnFunction: records the dtypes it is given."""
    seen = []
    real = None  # mmcv's function, set before the patch

    @classmethod
    def apply(cls, value, shapes, starts, loc, weights, im2col_step):
        cls.seen.append((value.dtype, loc.dtype, weights.dtype))
        return cls.real.apply(value, shapes, starts, loc, weights, im2col_step)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
def test_autocast_samples_in_fp32_with_finite_grads(dtype, monkeypatch, relative_error):
    import mmcv.ops.multi_scale_deform_attn as mmcv_msda
    torch.manual_seed(0)
    attn = MSDeformAttn(dim=192, num_heads=6, num_levels=3, num_points=4).cuda()
    for p in attn.parameters():  # the default init zeroes offsets and attention logits
        torch.nn.init.normal_(p, std=0.05)
    tokens = sum(h * w for h, w in SHAPES)
    query = torch.randn(2, 500, 192, device='cuda', requires_grad=True)
    feat = torch.randn(2, tokens, 192, device='cuda', requires_grad=True)
    ref_pts = torch.rand(2, 500, 1, 2, device='cuda')
    with torch.no_grad():
        ref_out = attn(query, ref_pts, feat, SHAPES)  # fp32

    _RecordDtypes.seen, _RecordDtypes.real = [], mmcv_msda.MultiScaleDeformableAttnFunction
    monkeypatch.setattr(mmcv_msda, 'MultiScaleDeformableAttnFunction', _RecordDtypes)
    assert ms_deform_attn.deform_attn is deform_attn  # the module samples through this function
    with torch.autocast('cuda', dtype=dtype):
        out = attn(query, ref_pts, feat, SHAPES)
    assert _RecordDtypes.seen == [(torch.float32,) * 3], f'the kernel was given {_RecordDtypes.seen}'
    assert out.dtype == dtype  # the output projection runs in the autocast dtype
    out.float().square().mean().backward()
    grads = [query.grad, feat.grad] + [p.grad for p in attn.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # loose: half-precision projections around an fp32 sampling
    assert relative_error(out.float(), ref_out) < 5e-2
