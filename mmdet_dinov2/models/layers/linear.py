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
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...utils.machine import cpu_flags, onednn_runs_avx512

MIN_MACS = 1 << 20  # multiply-adds below which F.linear is faster


@functools.lru_cache(maxsize=None)
def onednn_pays() -> bool:
    """Whether large float32 linears go to oneDNN in this process (oneDNN reads its cap once too)."""
    return onednn_runs_avx512(os.environ, cpu_flags())


def _on_onednn(x: Tensor, weight: Tensor) -> bool:
    return (x.device.type == 'cpu' and x.dtype == torch.float32 and weight.dtype == torch.float32
            and math.prod(x.shape[:-1]) * weight.numel() >= MIN_MACS
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and not torch.is_autocast_enabled('cpu')
            # tracing, export and compilation see plain F.linear (ONNX has no mkldnn_convolution)
            and not torch.jit.is_tracing() and not torch.compiler.is_compiling()
            and onednn_pays())


def linear(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``F.linear(x, weight, bias)``: x (..., C_in), weight (C_out, C_in) -> (..., C_out)."""
    if not _on_onednn(x, weight):
        return F.linear(x, weight, bias)
    if x.shape[-1] != weight.shape[1]:
        raise RuntimeError(f'linear: input of shape {tuple(x.shape)} has {x.shape[-1]} channels, weight '
                           f'{tuple(weight.shape)} expects {weight.shape[1]}')
    rows = x.reshape(-1, x.shape[-1])  # (N, C_in); a view for contiguous x
    # torch.mkldnn_convolution rather than F.conv2d: conv2d picks a slow non-oneDNN path for 1x1 filters
    # on one thread or small inputs
    y = torch.mkldnn_convolution(rows[None, :, None, :].permute(0, 3, 1, 2), weight[:, :, None, None], bias,
                                 padding=(0, 0), stride=(1, 1), dilation=(1, 1),
                                 groups=1)  # (1, C_out, N, 1), channels-last
    return y.permute(0, 2, 3, 1).reshape(*x.shape[:-1], weight.shape[0])  # a view


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, init and state dict) computed by :func:`linear`."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)
