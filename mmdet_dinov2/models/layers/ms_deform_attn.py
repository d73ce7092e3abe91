"""Multi-scale deformable attention (Zhu et al., Deformable DETR, ICLR 2021) as ViT-Adapter uses it.

ViT-Adapter's variant projects the values to a narrower width (``deform_ratio``) to save memory.
On CUDA the sampling runs in mmcv's compiled kernel; on the CPU it runs as one ``embedding_bag``
(each query gathers its bilinear corners as weighted rows of the value table), which gives the same
numbers as ``grid_sample`` but skips the per-level layout copies and the (N, D, Q, P) intermediate.
"""
import math
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The four bilinear corners of a sampling point as (dx, dy) offsets from its top-left neighbour.
_CORNERS = ((0, 0), (1, 0), (0, 1), (1, 1))


def deform_attn_cpu(value: Tensor, spatial_shapes: Sequence[Tuple[int, int]], sampling_locations: Tensor,
                    attention_weights: Tensor) -> Tensor:
    """Bilinear sampling (zero padding, ``align_corners=False``) summed with attention weights.

    Numerically the same as mmcv's ``multi_scale_deformable_attn_pytorch``, written as a single
    weighted embedding bag over the flattened value table.

    Args:
        value (Tensor): (B, S, M, D) values of all levels, S = sum of H_l * W_l.
        spatial_shapes (sequence of (int, int)): (H_l, W_l) of each level, in the order of ``value``.
        sampling_locations (Tensor): (B, Q, M, L, P, 2) as (x, y), 0..1 over each level's extent.
        attention_weights (Tensor): (B, Q, M, L, P).

    Returns:
        Tensor: (B, Q, M * D).
    """
    B, S, M, D = value.shape
    _, Q, _, L, P, _ = sampling_locations.shape
    shapes = torch.tensor(spatial_shapes, device=value.device)  # (L, 2) as (H, W)
    starts = F.pad(shapes.prod(1).cumsum(0)[:-1], (1, 0))  # (L,) first token of each level
    size_xy = shapes.flip(1)[:, None, None, :]  # (L, 1, 1, 2) as (W, H)
    corners = torch.tensor(_CORNERS, device=value.device)  # (4, 2)

    # pixel coordinates with pixel centres on integers, then the top-left neighbour and the fractions
    xy = sampling_locations * size_xy.squeeze(2).to(value.dtype) - 0.5  # (B, Q, M, L, P, 2)
    xy0 = xy.detach().floor()
    frac = (xy - xy0).unsqueeze(-2)  # (B, Q, M, L, P, 1, 2)
    bilinear = torch.where(corners.bool(), frac, 1 - frac).prod(-1)  # (B, Q, M, L, P, 4)

    with torch.no_grad():
        xy_corner = xy0.long().unsqueeze(-2) + corners  # (B, Q, M, L, P, 4, 2)
        inside = ((xy_corner >= 0) & (xy_corner < size_xy)).all(-1)  # (B, Q, M, L, P, 4)
        xy_corner = torch.minimum(xy_corner.clamp_(min=0), size_xy - 1)
        token = starts[:, None, None] + xy_corner[..., 1] * size_xy[..., 0] + xy_corner[..., 0]
        batch = torch.arange(B, device=value.device).view(B, 1, 1, 1, 1, 1)
        head = torch.arange(M, device=value.device).view(1, 1, M, 1, 1, 1)
        row = ((batch * S + token) * M + head).view(B * Q * M, L * P * 4)  # rows of value (B*S*M, D)

    coef = attention_weights.unsqueeze(-1) * bilinear * inside  # (B, Q, M, L, P, 4)
    out = F.embedding_bag(row, value.reshape(B * S * M, D), mode='sum',
                          per_sample_weights=coef.reshape(B * Q * M, L * P * 4))  # (B*Q*M, D)
    return out.view(B, Q, M * D)


def deform_attn(value: Tensor, spatial_shapes: Sequence[Tuple[int, int]], sampling_locations: Tensor,
                attention_weights: Tensor) -> Tensor:
    """Multi-scale deformable sampling on mmcv's CUDA kernel or the CPU embedding bag (same args)."""
    if not value.is_cuda:
        return deform_attn_cpu(value, spatial_shapes, sampling_locations, attention_weights)
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
    shapes = torch.tensor(spatial_shapes, dtype=torch.long, device=value.device)
    starts = F.pad(shapes.prod(1).cumsum(0)[:-1], (1, 0))
    # the compiled kernel runs in fp32, like the original's custom_fwd(cast_inputs=torch.float32)
    out = MultiScaleDeformableAttnFunction.apply(value.float(), shapes, starts, sampling_locations.float(),
                                                 attention_weights.float(), 64)
    return out


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
        if value_dim % num_heads:
            raise ValueError(f'MSDeformAttn: the value width int(dim * deform_ratio) = int({dim} * '
                             f'{deform_ratio}) = {value_dim} must be divisible by num_heads={num_heads}')
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.sampling_offsets = nn.Linear(dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(dim, value_dim)
        self.output_proj = nn.Linear(value_dim, dim)
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
        offsets = self.sampling_offsets(query).view(B, Q, M, L, P, 2)
        weights = self.attention_weights(query).view(B, Q, M, L * P).softmax(-1).view(B, Q, M, L, P)
        size_xy = query.new_tensor([(w, h) for h, w in spatial_shapes])  # (L, 2)
        locations = reference_points[:, :, None, :, None, :] + offsets / size_xy[:, None, :]
        return self.output_proj(deform_attn(value, spatial_shapes, locations, weights).to(query.dtype))
