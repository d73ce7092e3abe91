"""Fully connected layers that run on oneDNN on CPUs where that pays: where oneDNN has AVX-512.

torch's CPU ``F.linear`` calls MKL's sgemm, which does not use AVX-512 on AMD CPUs: on this project's
CI machine (AMD EPYC, 2 cores) it reaches ~200 GFLOP/s where oneDNN, behind torch's convolutions,
reaches ~470. A linear layer is a 1x1 convolution over a (1, C, N, 1) channels-last view of its N
input rows, so large float32 CPU products take that route when oneDNN runs AVX-512 code (forward and
backward of ViT-S's linears: 0.49-0.59x F.linear's time on 2 threads); their numbers differ from
``F.linear`` by float32 rounding only. Without AVX-512 (the CPU lacks it, or ONEDNN_MAX_CPU_ISA caps
oneDNN below it) oneDNN's AVX2 kernels take 1.2-1.5x F.linear's time on the same shapes, so
``F.linear`` is used. CUDA, other dtypes, CPU autocast, small products (where oneDNN's call overhead
dominates), tracing, export and torch.compile go to ``F.linear`` too.
"""
import functools
import math
import os
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ...utils.machine import cpu_flags, onednn_runs_avx512

MIN_MACS = 1 << 20  # multiply-adds below which F.linear is faster
# act_linear recomputes activations of at least this many elements (1 MiB in float32); below it the
# memory saved is small and the recomputation's fixed cost (a nested autograd call, ~0.1 ms) is not
RECOMPUTE_MIN_NUMEL = 1 << 18


@functools.lru_cache(maxsize=None)
def onednn_pays() -> bool:
    """Whether large float32 linears go to oneDNN in this process (oneDNN reads its cap once too)."""
    return onednn_runs_avx512(os.environ, cpu_flags())


def _on_onednn(x: Tensor, weight: Tensor) -> bool:
    return (x.device.type == 'cpu' and x.dtype == torch.float32 and weight.dtype == torch.float32
            # tracing, export and compilation see plain F.linear (ONNX has no mkldnn_convolution); asked
            # first, since torch.compile cannot trace mkldnn.is_available() and would break the graph
            and not torch.jit.is_tracing() and not torch.compiler.is_compiling()
            and math.prod(x.shape[:-1]) * weight.numel() >= MIN_MACS
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and not torch.is_autocast_enabled('cpu')
            and onednn_pays())


def onednn_linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``F.linear(x, weight, bias)``: x (..., C_in), weight (C_out, C_in) -> (..., C_out)."""
    if not _on_onednn(x, weight):
        return F.linear(x, weight, bias)
    if x.shape[-1] != weight.shape[1]:
        raise RuntimeError(f'onednn_linear: input of shape {tuple(x.shape)} has {x.shape[-1]} channels, weight '
                           f'{tuple(weight.shape)} expects {weight.shape[1]}')
    rows = x.reshape(-1, x.shape[-1])  # (N, C_in); a view for contiguous x
    # torch.mkldnn_convolution rather than F.conv2d: conv2d picks a slow non-oneDNN path for 1x1 filters
    # on one thread or small inputs
    y = torch.mkldnn_convolution(_channels_last_rows(rows), weight[:, :, None, None], bias,
                                 padding=(0, 0), stride=(1, 1), dilation=(1, 1),
                                 groups=1)  # (1, C_out, N, 1), channels-last
    return y.permute(0, 2, 3, 1).reshape(*x.shape[:-1], weight.shape[0])  # a view


class OneDNNLinear(nn.Linear):
    """``nn.Linear`` (same parameters, init and state dict) computed by :func:`onednn_linear`."""

    def forward(self, x: Tensor) -> Tensor:
        return onednn_linear(x, self.weight, self.bias)


def _channels_last_rows(rows: Tensor) -> Tensor:
    """(N, C) rows as the (1, C, N, 1) channels-last map :func:`onednn_linear`'s oneDNN route convolves."""
    return rows[None, :, None, :].permute(0, 3, 1, 2)


def linear_backward(grad: Tensor, x: Tensor, weight: Tensor, onednn: bool,
                    output_mask: Sequence[bool]) -> Tuple[Optional[Tensor], ...]:
    """Gradients of ``onednn_linear(x, weight, bias)`` w.r.t. x, weight and bias (those ``output_mask`` asks
    for, else None), by the kernels autograd runs for the forward's route (``onednn``): the same
    numbers as backpropagating through :func:`onednn_linear`."""
    rows, grad_rows = x.reshape(-1, x.shape[-1]), grad.reshape(-1, weight.shape[0])
    if onednn:
        gx, gw, gb = torch.ops.aten.convolution_backward(
            _channels_last_rows(grad_rows), _channels_last_rows(rows), weight[:, :, None, None],
            [weight.shape[0]] if output_mask[2] else None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
            list(output_mask))
        gx = None if gx is None else gx.permute(0, 2, 3, 1).reshape(x.shape)
        return gx, None if gw is None else gw.view_as(weight), gb
    return (grad_rows.mm(weight).view(x.shape) if output_mask[0] else None,
            rows.t().mm(grad_rows).t() if output_mask[1] else None,  # as addmm's backward orders it
            grad_rows.sum(0) if output_mask[2] else None)


class _ActLinear(torch.autograd.Function):
    """onednn_linear(act(h), weight, bias) that keeps h, not act(h), for the backward pass and recomputes
    act(h) there: the activation (an element-wise function of h) already keeps h for its own
    gradient, so an FFN's hidden activations are stored once instead of twice."""

    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, bias: Optional[Tensor], act: Callable[[Tensor], Tensor]):
        a = act(h)
        ctx.act, ctx.onednn, ctx.with_bias = act, _on_onednn(a, weight), bias is not None
        ctx.save_for_backward(h, weight)
        return onednn_linear(a, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        h, weight = ctx.saved_tensors
        need_h, need_weight, need_bias = ctx.needs_input_grad[:3]
        with torch.enable_grad():
            h = h.detach().requires_grad_(need_h)
            a = ctx.act(h)
        grad_a, grad_weight, grad_bias = linear_backward(grad, a.detach(), weight, ctx.onednn,
                                                         (need_h, need_weight, need_bias and ctx.with_bias))
        grad_h = torch.autograd.grad(a, h, grad_a)[0] if need_h else None
        return grad_h, grad_weight, grad_bias, None


def act_linear(h: Tensor, act: Callable[[Tensor], Tensor], weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``onednn_linear(act(h), weight, bias)`` for an element-wise ``act`` (e.g. an FFN's GELU and fc2).

    When gradients are recorded on a CPU or CUDA device and h has at least ``RECOMPUTE_MIN_NUMEL``
    elements, act(h) is recomputed in the backward pass from h (which ``act`` keeps anyway) instead of
    being stored: ViT-S at 512x512 keeps ~90 MB less for its backward. Same numbers as
    ``onednn_linear(act(h), weight, bias)``, under autocast too (h already in the autocast dtype: weight and
    bias are cast to it, as autocast would). Tracing, compilation, other devices, other autocast
    cases and smaller h run that expression itself.
    """
    device = h.device.type
    if (not torch.is_grad_enabled() or device not in ('cpu', 'cuda') or h.numel() < RECOMPUTE_MIN_NUMEL
            or not (h.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad))
            or torch.jit.is_tracing() or torch.compiler.is_compiling()):
        return onednn_linear(act(h), weight, bias)
    if not torch.is_autocast_enabled(device):
        return _ActLinear.apply(h, weight, bias, act)
    dtype = torch.get_autocast_dtype(device)
    if h.dtype != dtype:
        return onednn_linear(act(h), weight, bias)
    weight, bias = weight.to(dtype), None if bias is None else bias.to(dtype)
    with torch.autocast(device, enabled=False):
        return _ActLinear.apply(h, weight, bias, act)
