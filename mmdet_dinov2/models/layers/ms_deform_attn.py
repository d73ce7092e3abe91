"""Multi-scale deformable attention (Zhu et al., Deformable DETR, ICLR 2021) as ViT-Adapter uses it.

ViT-Adapter's variant projects the values to a narrower width (``deform_ratio``) to save memory.
On CUDA the sampling runs in mmcv's compiled kernel; on the CPU it runs as one ``embedding_bag``
(each query gathers its bilinear corners as weighted rows of the value table), which gives the same
numbers as ``grid_sample`` but skips the per-level layout copies and the (N, D, Q, P) intermediate.
While tracing or exporting (ONNX, ``torch.export``) the same rows and weights are gathered and
summed as a batched matrix product, which ONNX expresses with standard operators (Gather, MatMul).
"""
import math
import warnings
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .linear import OneDNNLinear, onednn_linear


def _on_map(corner: Tensor, size: Tensor) -> Tensor:
    """A corner's integer coordinate clamped to the map (0..size-1)."""
    return corner.clamp(min=0).minimum(size - 1)


def _inside(corner: Tensor, size: Tensor) -> Tensor:
    """1 where a corner's integer coordinate lies on the map (0..size-1), else 0 (zero padding)."""
    return (corner == _on_map(corner, size)).to(corner.dtype)


def _bilinear_factors(x: Tensor, y: Tensor, W: Tensor, H: Tensor):
    """Per-axis corner weights of pixel coordinates (x, y), zero for corners off the map (the y factors
    without the attention weights). Returns (wx0, wx1, uy0, uy1) and the masks (x0, x1, y0, y1 inside)."""
    x0, y0 = x.floor(), y.floor()
    masks = _inside(x0, W), _inside(x0 + 1, W), _inside(y0, H), _inside(y0 + 1, H)
    fx, fy = x - x0, y - y0  # the far corner's share along each axis
    return ((1 - fx) * masks[0], fx * masks[1], (1 - fy) * masks[2], fy * masks[3]), masks


def _corner_coefficients(factors) -> Tensor:
    """(..., 4) weights of the corners (y0, x0), (y0, x1), (y1, x0), (y1, x1)."""
    wx0, wx1, wy0, wy1 = factors
    return torch.stack([wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1], -1)


class _BilinearRowSum(torch.autograd.Function):
    """out[b] = sum_k coef[b, k] * table[rows[b, k]] with coef the attention-weighted bilinear corner
    weights of pixel coordinates (x, y): an embedding bag over the value table.

    The backward pass keeps only x, y and the attention weights and recomputes the coefficients from
    them (the element-wise graph that builds them would keep about ten tensors of their size). The
    table gradient is the transposed bag (entries grouped by row with one argsort), the coefficient
    gradient the sampled dot products (SDDMM), chained by hand to x, y and the weights; this avoids
    torch's sort-heavy dense embedding-bag backward.
    """

    @staticmethod
    def forward(ctx, table: Tensor, x: Tensor, y: Tensor, weights: Tensor, rows: Tensor, W: Tensor, H: Tensor):
        ctx.save_for_backward(table, x, y, weights, rows)
        ctx.W, ctx.H = W, H
        wx0, wx1, uy0, uy1 = _bilinear_factors(x, y, W, H)[0]
        coef = _corner_coefficients((wx0, wx1, uy0 * weights, uy1 * weights))
        return F.embedding_bag(rows, table, mode='sum', per_sample_weights=coef.view(rows.shape))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        table, x, y, weights, rows = ctx.saved_tensors
        (wx0, wx1, uy0, uy1), (mx0, mx1, my0, my1) = _bilinear_factors(x, y, ctx.W, ctx.H)
        wy0, wy1 = uy0 * weights, uy1 * weights
        grad, flat = grad.contiguous(), rows.flatten()
        grad_table = grad_x = grad_y = grad_weights = None
        if ctx.needs_input_grad[0]:
            coef = _corner_coefficients((wx0, wx1, wy0, wy1)).flatten()
            order = flat.argsort()
            counts = torch.bincount(flat, minlength=table.shape[0])
            grad_table = F.embedding_bag(order // rows.shape[1], grad, counts.cumsum(0) - counts, mode='sum',
                                         per_sample_weights=coef.index_select(0, order))
        if any(ctx.needs_input_grad[1:4]):
            B, K = rows.shape
            with warnings.catch_warnings():  # sparse CSR is "beta"; these two ops are long-standing
                warnings.filterwarnings('ignore', message='.*[Ss]parse')
                crow = torch.arange(0, B * K + 1, K, device=rows.device, dtype=rows.dtype)
                pattern = torch.sparse_csr_tensor(crow, flat, torch.ones_like(flat, dtype=table.dtype),
                                                  size=(B, table.shape[0]))
                g = torch.sparse.sampled_addmm(pattern, grad, table.t(), beta=0.0).values()
            g00, g01, g10, g11 = g.view(x.shape + (4,)).unbind(-1)  # d out / d coef of each corner
            grad_wy0, grad_wy1 = g00 * wx0 + g01 * wx1, g10 * wx0 + g11 * wx1
            grad_wx0, grad_wx1 = g00 * wy0 + g10 * wy1, g01 * wy0 + g11 * wy1
            grad_x = grad_wx1 * mx1 - grad_wx0 * mx0
            grad_y = (grad_wy1 * my1 - grad_wy0 * my0) * weights
            grad_weights = grad_wy0 * uy0 + grad_wy1 * uy1
        return grad_table, grad_x, grad_y, grad_weights, None, None, None


def level_starts(shapes: Tensor) -> Tensor:
    """Index of each level's first token in the concatenated sequence: (L, 2) (H, W) -> (L,)."""
    sizes = shapes.prod(1)
    return sizes.cumsum(0) - sizes


def _pixels_and_rows(value: Tensor, spatial_shapes: Sequence[Tuple[int, int]], sampling_locations: Tensor):
    """The sampling points as pixel coordinates and the value-table rows of their bilinear corners.

    Returns x, y (B, Q, M, L, P) with pixel centres on integers, the table rows (B * Q * M, L * P * 4)
    of the corners (y0, x0), (y0, x1), (y1, x0), (y1, x1) (a corner off the map reads a clamped, valid
    row; :func:`_bilinear_factors` gives it weight 0) into ``value.reshape(B * S * M, D)``, and the
    level sizes W, H (L, 1).
    """
    B, S, M, D = value.shape
    _, Q, _, L, P, _ = sampling_locations.shape
    shapes = torch.tensor(spatial_shapes, device=value.device)  # (L, 2) as (H, W)
    H, W = shapes.to(value.dtype)[:, None].unbind(-1)  # (L, 1) each, against (B, Q, M, L, P)
    start = level_starts(shapes).to(value.dtype)[:, None]  # (L, 1)
    x = sampling_locations[..., 0] * W - 0.5  # (B, Q, M, L, P)
    y = sampling_locations[..., 1] * H - 0.5
    with torch.no_grad():
        x0, y0 = x.floor(), y.floor()
        x0_in, x1_in = _on_map(x0, W), _on_map(x0 + 1, W)
        y0_in, y1_in = _on_map(y0, H), _on_map(y0 + 1, H)
        # rows of the value table (B * S * M, D): (batch * S + token) * M + head; int32 sorts faster
        index_dtype = torch.int32 if B * S * M < 2 ** 31 else torch.int64
        batch_head = (torch.arange(B, device=x.device, dtype=index_dtype).view(B, 1, 1, 1, 1) * (S * M)
                      + torch.arange(M, device=x.device, dtype=index_dtype).view(1, 1, M, 1, 1))
        row0, row1 = start + y0_in * W, start + y1_in * W
        rows = torch.stack([(token.to(index_dtype) * M + batch_head)
                            for token in (row0 + x0_in, row0 + x1_in, row1 + x0_in, row1 + x1_in)], -1)
    return x, y, rows.view(B * Q * M, L * P * 4), W, H


def deform_attn_cpu(value: Tensor, spatial_shapes: Sequence[Tuple[int, int]], sampling_locations: Tensor,
                    attention_weights: Tensor) -> Tensor:
    """Bilinear sampling (zero padding, ``align_corners=False``) summed with attention weights.

    Numerically the same as mmcv's ``multi_scale_deformable_attn_pytorch``, written as one
    weighted row sum over the flattened value table (each point's four bilinear corners are rows).

    Args:
        value (Tensor): (B, S, M, D) values of all levels, S = sum of H_l * W_l.
        spatial_shapes (sequence of (int, int)): (H_l, W_l) of each level, in the order of ``value``.
        sampling_locations (Tensor): (B, Q, M, L, P, 2) as (x, y), 0..1 over each level's extent.
        attention_weights (Tensor): (B, Q, M, L, P).

    Returns:
        Tensor: (B, Q, M * D).
    """
    B, S, M, D = value.shape
    x, y, rows, W, H = _pixels_and_rows(value, spatial_shapes, sampling_locations)
    out = _BilinearRowSum.apply(value.reshape(B * S * M, D), x, y, attention_weights, rows, W, H)
    return out.view(B, -1, M * D)


def exporting() -> bool:
    """Whether torch is tracing or exporting the model (TorchScript, ONNX or ``torch.export``)."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


def deform_attn_export(value: Tensor, spatial_shapes: Sequence[Tuple[int, int]],
                       sampling_locations: Tensor, attention_weights: Tensor) -> Tensor:
    """:func:`deform_attn_cpu` (same args and result) in operators that ONNX has: the corner rows
    gathered from the value table (Gather), then weighted and summed by one batched (1, 4LP) x
    (4LP, D) product per query and head (MatMul). ONNX Runtime runs this faster than the same
    sampling as ``grid_sample`` (GridSample), which recomputes each point's corners per channel
    (docs/deployment.md)."""
    B, S, M, D = value.shape
    x, y, rows, W, H = _pixels_and_rows(value, spatial_shapes, sampling_locations)
    wx0, wx1, uy0, uy1 = _bilinear_factors(x, y, W, H)[0]
    coef = _corner_coefficients((wx0, wx1, uy0 * attention_weights, uy1 * attention_weights))
    corners = value.reshape(B * S * M, D)[rows]  # (B * Q * M, 4LP, D)
    out = torch.matmul(coef.view(rows.shape[0], 1, rows.shape[1]), corners)  # (B * Q * M, 1, D)
    return out.view(B, -1, M * D)


def deform_attn(value: Tensor, spatial_shapes: Sequence[Tuple[int, int]], sampling_locations: Tensor,
                attention_weights: Tensor) -> Tensor:
    """Multi-scale deformable sampling on mmcv's CUDA kernel or the CPU row sum (same args).

    Half-precision inputs are sampled in float32, like the original's
    ``custom_fwd(cast_inputs=torch.float32)``; float64 stays float64.
    """
    dtype = torch.promote_types(value.dtype, torch.float32)
    value, sampling_locations, attention_weights = (t.to(dtype) for t in (value, sampling_locations,
                                                                          attention_weights))
    if exporting():
        return deform_attn_export(value, spatial_shapes, sampling_locations, attention_weights)
    if not value.is_cuda:
        return deform_attn_cpu(value=value, spatial_shapes=spatial_shapes,
                               sampling_locations=sampling_locations, attention_weights=attention_weights)
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
    shapes = torch.tensor(spatial_shapes, dtype=torch.long, device=value.device)
    im2col_step = 64  # mmcv's default: the kernel works through the batch in chunks of this many images
    # an autograd.Function's forward gets its arguments positionally, in mmcv's order
    return MultiScaleDeformableAttnFunction.apply(value, shapes, level_starts(shapes), sampling_locations,
                                                  attention_weights, im2col_step)


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention with a reduced value width (ViT-Adapter's ``MSDeformAttn``).

    Args:
        dim (int): channels of the queries, the features and the output.
        num_heads (int): attention heads M.
        num_levels (int): feature levels L the queries sample from.
        num_points (int): sampling points P per head and level.
        deform_ratio (float): the values are projected to ``int(dim * deform_ratio)`` channels.
    """

    def __init__(self, dim: int = 256, num_heads: int = 8, num_levels: int = 4, num_points: int = 4,
                 deform_ratio: float = 1.0):
        super().__init__()
        value_dim = int(dim * deform_ratio)
        if value_dim < 1 or value_dim % num_heads:
            raise ValueError(f'MSDeformAttn: the value width int(dim * deform_ratio) = int({dim} * '
                             f'{deform_ratio}) = {value_dim} must be a positive multiple of '
                             f'num_heads={num_heads}')
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.sampling_offsets = OneDNNLinear(dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = OneDNNLinear(dim, num_heads * num_levels * num_points)
        self.value_proj = OneDNNLinear(dim, value_dim)
        self.output_proj = OneDNNLinear(value_dim, dim)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        """Deformable DETR's init: offsets start on a ring of directions, one per head, growing with
        the point index; uniform attention; Xavier projections."""
        nn.init.zeros_(self.sampling_offsets.weight)
        theta = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        direction = torch.stack([theta.cos(), theta.sin()], -1)  # (M, 2)
        direction = direction / direction.abs().max(-1, keepdim=True).values  # onto the unit square
        scale = torch.arange(1, self.num_points + 1, dtype=torch.float32)  # (P,)
        grid = direction[:, None, None, :] * scale[None, None, :, None]  # (M, 1, P, 2)
        self.sampling_offsets.bias.copy_(grid.expand(-1, self.num_levels, -1, -1).reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(self, query: Tensor, reference_points: Tensor, feat: Tensor,
                spatial_shapes: Sequence[Tuple[int, int]]) -> Tensor:
        """
        Args:
            query (Tensor): (B, Q, C).
            reference_points (Tensor): (B or 1, Q, 1 or L, 2) as (x, y), 0..1.
            feat (Tensor): (B, S, C), the levels flattened and concatenated.
            spatial_shapes (sequence of (int, int)): (H_l, W_l) of the levels in ``feat``.

        Returns:
            Tensor: (B, Q, C).
        """
        B, Q, _ = query.shape
        M, L, P = self.num_heads, self.num_levels, self.num_points
        if len(spatial_shapes) != L or sum(h * w for h, w in spatial_shapes) != feat.shape[1]:
            raise ValueError(f'MSDeformAttn: spatial_shapes {list(spatial_shapes)} do not describe '
                             f'{L} levels of {feat.shape[1]} tokens in total')
        value = self.value_proj(feat).view(B, feat.shape[1], M, -1)  # (B, S, M, D)
        # offsets and attention logits read the same query: one matmul for both
        weight = torch.cat([self.sampling_offsets.weight, self.attention_weights.weight])
        bias = torch.cat([self.sampling_offsets.bias, self.attention_weights.bias])
        offsets, logits = onednn_linear(query, weight, bias).split([M * L * P * 2, M * L * P], -1)
        offsets = offsets.view(B, Q, M, L, P, 2)
        weights = logits.reshape(B, Q, M, L * P).softmax(-1).view(B, Q, M, L, P)
        size_xy = query.new_tensor([(w, h) for h, w in spatial_shapes])  # (L, 2)
        locations = reference_points[:, :, None, :, None, :] + offsets / size_xy[:, None, :]
        out = deform_attn(value=value, spatial_shapes=spatial_shapes, sampling_locations=locations,
                          attention_weights=weights)  # (B, Q, M * D)
        return self.output_proj(out.to(query.dtype))
