"""act_linear on CUDA (fp32 and under autocast): the numbers of linear(act(h)) while keeping only h,
the path the GPU configs' FFNs take (their hidden tensors are far above the recompute threshold)."""
import pytest
import torch
import torch.nn.functional as F

from mmdet_dinov2.models.layers.linear import RECOMPUTE_MIN_NUMEL, act_linear, onednn_linear


def _case(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(2, 1024, 512, generator=g).cuda().to(dtype).requires_grad_()
    weight = (torch.randn(384, 512, generator=g) / 512 ** 0.5).cuda().requires_grad_()
    bias = torch.randn(384, generator=g).cuda().requires_grad_()
    assert h.numel() >= RECOMPUTE_MIN_NUMEL
    return h, weight, bias


def _run(fn, h, weight, bias):
    out = fn(h, weight, bias)
    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).cuda()
    return [out] + list(torch.autograd.grad((out.float() * probe).sum(), (h, weight, bias)))


@pytest.mark.parametrize('autocast', [None, torch.float16, torch.bfloat16])
def test_act_linear_on_cuda_equals_linear_of_gelu_and_stores_less(autocast, no_tf32, relative_error, saved_bytes):
    h, weight, bias = _case(autocast or torch.float32)
    ours = lambda *a: act_linear(a[0], F.gelu, *a[1:])  # noqa: E731
    plain = lambda *a: onednn_linear(F.gelu(a[0]), *a[1:])  # noqa: E731
    with torch.autocast('cuda', dtype=autocast or torch.float16, enabled=autocast is not None):
        got, want = _run(ours, h, weight, bias), _run(plain, h, weight, bias)
        saved_ours = saved_bytes(lambda: ours(h, weight, bias))
        saved_plain = saved_bytes(lambda: plain(h, weight, bias))
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert relative_error(a, b) <= (1e-6 if autocast is None else 1e-3)
    assert saved_plain - saved_ours == h.numel() * h.element_size()  # GELU's output is not kept
