"""onednn_linear(): F.linear's numbers on oneDNN for float32 CPU inputs where oneDNN has AVX-512, F.linear
itself otherwise."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from mmdet_dinov2.models.layers import OneDNNLinear, onednn_linear
from mmdet_dinov2.models.layers.linear import act_linear
from mmdet_dinov2.models.layers.linear import MIN_MACS
from mmdet_dinov2.utils.machine import AVX512_CORE_FLAGS, cpu_flags

LINEAR = sys.modules['mmdet_dinov2.models.layers.linear']  # the module whose onednn_pays is patched
THREADS = torch.get_num_threads()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def onednn_route(monkeypatch):
    """Both routes are tested on every CPU: the oneDNN one too where this CPU would not take it."""
    monkeypatch.setattr(LINEAR, 'onednn_pays', lambda: True)


def _float64_reference(x, weight, bias, probe):
    """Output and gradients (x, weight, bias) of x @ weight.T + bias, computed in float64."""
    x, weight = x.detach().double().requires_grad_(), weight.detach().double().requires_grad_()
    bias = None if bias is None else bias.detach().double().requires_grad_()
    out = x @ weight.t() + (0 if bias is None else bias)
    grads = torch.autograd.grad((out * probe.double()).sum(), [t for t in (x, weight, bias) if t is not None])
    return out, grads


def _x(kind, generator):
    if kind == 'tokens':
        return torch.randn(2, 370, 64, generator=generator)
    if kind == 'map':  # (B, h, w, C) as the permuted view of a (B, C, h, w) map: not contiguous
        return torch.randn(2, 64, 17, 19, generator=generator).permute(0, 2, 3, 1)
    if kind == 'small':  # below MIN_MACS: F.linear
        return torch.randn(3, 64, generator=generator)
    raise ValueError(kind)


@pytest.mark.parametrize('kind', ['tokens', 'map', 'small'])
@pytest.mark.parametrize('with_bias', [True, False])
def test_linear_equals_float64_matmul_forward_and_backward(kind, with_bias):
    g = torch.Generator().manual_seed(0)
    x = _x(kind, g).requires_grad_()
    weight = torch.randn(40, 64, generator=g, requires_grad=True)
    bias = torch.randn(40, generator=g, requires_grad=True) if with_bias else None
    out = onednn_linear(x, weight, bias)
    assert out.shape == (*x.shape[:-1], 40)
    probe = torch.randn(out.shape, generator=g)
    want, want_grads = _float64_reference(x, weight, bias, probe)
    grads = torch.autograd.grad((out * probe).sum(), [t for t in (x, weight, bias) if t is not None])
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)
    for got, ref in zip(grads, want_grads):
        assert got.shape == ref.shape
        torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-4)


def _ops(fn):
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages()}


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason='torch built without oneDNN')
def test_large_float32_products_run_on_onednn_the_rest_on_f_linear():
    torch.set_num_threads(1)  # where F.conv2d would leave oneDNN for 1x1 filters
    x, weight = torch.randn(1, 300, 64), torch.randn(64, 64)  # 1.2M multiply-adds
    assert 300 * 64 * 64 >= MIN_MACS > 3 * 64 * 64
    try:
        assert 'aten::mkldnn_convolution' in _ops(lambda: onednn_linear(x, weight))
    finally:
        torch.set_num_threads(THREADS)
    for args in [(x.double(), weight.double()), (x[:, :3], weight)]:
        ops = _ops(lambda: onednn_linear(*args))
        assert 'aten::mkldnn_convolution' not in ops and 'aten::linear' in ops
        torch.testing.assert_close(onednn_linear(*args), F.linear(*args))
    with torch.autocast('cpu', dtype=torch.bfloat16):  # autocast's own dtype rule applies
        assert onednn_linear(x, weight).dtype == torch.bfloat16


def test_empty_input_and_bfloat16_fall_back_to_f_linear():
    weight = torch.randn(8, 16)
    assert onednn_linear(torch.randn(0, 16), weight).shape == (0, 8)
    x = torch.randn(4, 16, dtype=torch.bfloat16)
    torch.testing.assert_close(onednn_linear(x, weight.bfloat16()), F.linear(x, weight.bfloat16()))


def test_linear_module_is_an_nn_linear_with_the_same_state_dict():
    torch.manual_seed(0)
    ours, ref = OneDNNLinear(64, 32), nn.Linear(64, 32)
    assert isinstance(ours, nn.Linear)
    assert ours.state_dict().keys() == ref.state_dict().keys()
    ours.load_state_dict(ref.state_dict())
    for rows in (5, 1000):  # F.linear, oneDNN
        x = torch.randn(rows, 64)
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
        with pytest.raises(RuntimeError, match='63'):  # a wrong input width fails loudly on either route
            ours(torch.randn(rows, 63))


def test_tracing_records_f_linear_so_exports_need_no_onednn_op():
    module = OneDNNLinear(64, 64)
    x = torch.randn(1, 300, 64)
    graph = str(torch.jit.trace(module, x).graph)
    assert 'aten::linear' in graph and 'mkldnn' not in graph


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason='torch built without oneDNN')
def test_with_onednn_capped_at_avx2_a_process_runs_f_linear():
    """What a CPU without AVX-512 runs (the real choice, in a fresh process)."""
    code = ('import torch; from torch.profiler import profile, ProfilerActivity\n'
            'from mmdet_dinov2.models.layers import OneDNNLinear\n'
            'm, x = OneDNNLinear(64, 64), torch.randn(300, 64)\n'
            'with profile(activities=[ProfilerActivity.CPU]) as p: m(x)\n'
            'print(sorted({e.key for e in p.key_averages()} & {"aten::mkldnn_convolution", "aten::linear"}))')
    for cap, want in (('AVX2', "['aten::linear']"), ('ALL', "['aten::mkldnn_convolution']")):
        if cap == 'ALL' and not AVX512_CORE_FLAGS <= cpu_flags():
            continue  # this CPU has no AVX-512: F.linear whatever the cap
        if cap == 'ALL' and os.environ.get('ONEDNN_MAX_CPU_ISA', 'ALL').upper() == 'ALL':
            # this process runs uncapped: the same code here, without a second interpreter
            m, x = OneDNNLinear(64, 64), torch.randn(300, 64)
            with profile(activities=[ProfilerActivity.CPU]) as p:
                m(x)
            assert str(sorted({e.key for e in p.key_averages()}
                              & {'aten::mkldnn_convolution', 'aten::linear'})) == want
            continue
        out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO,
                             env={**os.environ, 'ONEDNN_MAX_CPU_ISA': cap}, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == want, (cap, out.stdout)


@pytest.fixture
def recompute_all(monkeypatch):
    """act_linear recomputes the activations of the small test tensors too."""
    monkeypatch.setattr(LINEAR, 'RECOMPUTE_MIN_NUMEL', 0)


def _swiglu(h):
    h1, h2 = h.chunk(2, dim=-1)
    return F.silu(h1) * h2


def _act_linear_case(act, with_bias, generator):
    """(h, weight, bias) of an FFN's second half: h (2, 300, 96) as fc1 gives it."""
    h = torch.randn(2, 300, 96, generator=generator, requires_grad=True)
    weight = torch.randn(40, 96 if act is F.gelu else 48, generator=generator, requires_grad=True)
    bias = torch.randn(40, generator=generator, requires_grad=True) if with_bias else None
    return h, weight, bias


def _output_and_grads(fn, h, weight, bias, probe=None):
    out = fn(h, weight, bias)
    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)) if probe is None else probe
    inputs = [t for t in (h, weight, bias) if t is not None]
    return out, torch.autograd.grad((out.float() * probe).sum(), inputs)


@pytest.mark.parametrize('route', ['onednn', 'f_linear'])
@pytest.mark.parametrize('act', [F.gelu, _swiglu], ids=['gelu', 'swiglu'])
@pytest.mark.parametrize('with_bias', [True, False])
def test_act_linear_gives_the_numbers_of_linear_of_act(route, act, with_bias, monkeypatch, recompute_all):
    """Recomputing act(h) in the backward pass changes what is stored, not a single bit of the result."""
    if route == 'f_linear':
        monkeypatch.setattr(LINEAR, 'onednn_pays', lambda: False)
    h, weight, bias = _act_linear_case(act, with_bias, torch.Generator().manual_seed(0))
    got, got_grads = _output_and_grads(lambda *a: act_linear(a[0], act, *a[1:]), h, weight, bias)
    want, want_grads = _output_and_grads(lambda *a: onednn_linear(act(a[0]), *a[1:]), h, weight, bias)
    assert torch.equal(got, want)
    for g, w in zip(got_grads, want_grads):
        assert torch.equal(g, w)


@pytest.mark.parametrize('act', [F.gelu, _swiglu], ids=['gelu', 'swiglu'])
def test_act_linear_does_not_store_the_activation(act, monkeypatch, saved_bytes):
    h, weight, bias = _act_linear_case(act, True, torch.Generator().manual_seed(0))
    plain = saved_bytes(lambda: onednn_linear(act(h), weight, bias))
    # below the size threshold the activation is small: stored, as by the plain expression
    assert h.numel() < LINEAR.RECOMPUTE_MIN_NUMEL
    assert saved_bytes(lambda: act_linear(h, act, weight, bias)) == plain
    monkeypatch.setattr(LINEAR, 'RECOMPUTE_MIN_NUMEL', h.numel())
    ours = saved_bytes(lambda: act_linear(h, act, weight, bias))
    stored_once = h.numel() * 4 + weight.numel() * 4  # h (which act needs anyway) and the weight
    assert ours == stored_once
    # the plain expression also stores act(h) (and SwiGLU's silu(h1)): one or two hidden-width tensors
    assert plain - ours == act(h).numel() * 4 * (1 if act is F.gelu else 2)


def test_act_linear_under_autocast_and_without_gradients(recompute_all):
    g = torch.Generator().manual_seed(0)
    h, weight, bias = _act_linear_case(F.gelu, True, g)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        hb = h.detach().bfloat16().requires_grad_()  # fc1's output under autocast
        got, got_grads = _output_and_grads(lambda *a: act_linear(a[0], F.gelu, *a[1:]), hb, weight, bias)
        want, want_grads = _output_and_grads(lambda *a: onednn_linear(F.gelu(a[0]), *a[1:]), hb, weight, bias)
    assert got.dtype == torch.bfloat16 and [t.dtype for t in got_grads] == [torch.bfloat16, torch.float32,
                                                                            torch.float32]
    assert torch.equal(got, want) and all(torch.equal(a, b) for a, b in zip(got_grads, want_grads))
    with torch.no_grad():
        assert torch.equal(act_linear(h, F.gelu, weight, bias), onednn_linear(F.gelu(h), weight, bias))
    with pytest.raises(RuntimeError, match='95'):  # a wrong width fails as linear's would
        act_linear(h[..., :95], F.gelu, weight, bias)


def test_torch_compile_traces_linear_and_act_linear_without_graph_breaks():
    """Under torch.compile both take F.linear's expression; asking oneDNN's availability first used to
    break the graph at every CPU linear (dynamo cannot trace it)."""
    module, x = OneDNNLinear(64, 64), torch.randn(1, 300, 64, requires_grad=True)

    def fn(x):
        return act_linear(module(x), F.gelu, module.weight, module.bias)

    compiled = torch.compile(fn, backend='eager', fullgraph=True)  # fullgraph: a graph break raises
    torch.testing.assert_close(compiled(x), fn(x))
