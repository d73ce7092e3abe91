"""Axial rotary position embedding of DINOv3 (Siméoni et al. 2025; RoPE: Su et al. 2021).

Each patch token gets a 2-D coordinate in [-1, 1]: its cell centre over the grid's height and width
("separate" normalisation), or over the grid's longer / shorter side ("max" / "min"). A head of
``d`` channels is rotated in ``d / 2`` planes: channel ``i`` pairs with channel ``i + d / 2``; the first
``d / 4`` planes turn with the row coordinate, the next ``d / 4`` with the column coordinate, at the
angles ``2 pi * coordinate / period`` for the ``d / 4`` periods stored in the ``periods`` buffer.
Only patch tokens are rotated; class and register (storage) tokens carry no position.

In training DINOv3 perturbs the coordinates (``shift``, ``jitter``, ``rescale``: a random shift, a
random per-axis and a random global log-uniform scale per forward); in eval mode none applies.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

NORMALIZE_COORDS = ('separate', 'max', 'min')


def rope_periods(head_dim: int, base: Optional[float] = 100.0, min_period: Optional[float] = None,
                 max_period: Optional[float] = None, dtype=torch.float32, device=None) -> Tensor:
    """The ``head_dim // 4`` rotation periods: ``base ** (4 i / head_dim)``, or a geometric series from
    min_period to max_period when those are given instead of base."""
    n = head_dim // 4
    if base is not None:
        return base ** (torch.arange(n, dtype=dtype, device=device) * 4 / head_dim)
    ratio = max_period / min_period
    return ratio ** torch.linspace(0, 1, n, dtype=dtype, device=device) * (max_period / ratio)


class RopePositionEmbedding(nn.Module):
    """sin and cos tables of the axial RoPE for an (H, W) token grid.

    Args:
        embed_dim (int): token channels.
        num_heads (int): attention heads; the head width must be a multiple of 4.
        base (float, optional): period base (DINOv3: 100); or None with min_period and max_period.
        min_period (float, optional): shortest period when base is None.
        max_period (float, optional): longest period when base is None.
        normalize_coords (str): 'separate', 'max' or 'min', see the module docstring.
        shift_coords (float, optional): training only: add U(-shift, shift) per axis.
        jitter_coords (float, optional): training only: scale each axis by exp(U(-log j, log j)).
        rescale_coords (float, optional): training only: scale both axes by exp(U(-log r, log r))
            (DINOv3 pretrained with 2).
    """

    def __init__(self, embed_dim: int, num_heads: int, base: Optional[float] = 100.0,
                 min_period: Optional[float] = None, max_period: Optional[float] = None,
                 normalize_coords: str = 'separate', shift_coords: Optional[float] = None,
                 jitter_coords: Optional[float] = None, rescale_coords: Optional[float] = None):
        super().__init__()
        head_dim = embed_dim // num_heads
        if embed_dim % num_heads or head_dim % 4:
            raise ValueError(f'RoPE: embed_dim={embed_dim} / num_heads={num_heads} must give a head width '
                             f'that is a multiple of 4 (one rotation plane pair per axis)')
        if (base is None) == (min_period is None or max_period is None):
            raise ValueError(f'RoPE: give base (got {base!r}) or both min_period and max_period (got '
                             f'{min_period!r}, {max_period!r}), not both and not neither')
        if normalize_coords not in NORMALIZE_COORDS:
            raise ValueError(f'RoPE: normalize_coords={normalize_coords!r} is not one of {NORMALIZE_COORDS}')
        self.head_dim = head_dim
        self.normalize_coords = normalize_coords
        self.shift_coords, self.jitter_coords, self.rescale_coords = shift_coords, jitter_coords, rescale_coords
        # persistent, like the official model's: official files carry it and it loads like a weight
        self.register_buffer('periods', rope_periods(head_dim, base, min_period, max_period), persistent=True)

    def coords(self, H: int, W: int) -> Tensor:
        """(H * W, 2) row-major (row, column) coordinates in [-1, 1], perturbed in training."""
        dd = dict(dtype=torch.float32, device=self.periods.device)
        div_h, div_w = {'separate': (H, W), 'max': (max(H, W),) * 2, 'min': (min(H, W),) * 2}[self.normalize_coords]
        rows = (torch.arange(H, **dd) + 0.5) / div_h
        cols = (torch.arange(W, **dd) + 0.5) / div_w
        coords = torch.stack(torch.meshgrid(rows, cols, indexing='ij'), -1).reshape(H * W, 2) * 2 - 1
        if self.training:
            if self.shift_coords is not None:
                coords = coords + torch.empty(2, **dd).uniform_(-self.shift_coords, self.shift_coords)
            if self.jitter_coords is not None:
                log_j = math.log(self.jitter_coords)
                coords = coords * torch.empty(2, **dd).uniform_(-log_j, log_j).exp()
            if self.rescale_coords is not None:
                log_r = math.log(self.rescale_coords)
                coords = coords * torch.empty(1, **dd).uniform_(-log_r, log_r).exp()
        return coords

    def forward(self, H: int, W: int) -> Tuple[Tensor, Tensor]:
        """sin, cos: (H * W, head_dim) each, in float32."""
        angles = 2 * math.pi * self.coords(H, W)[:, :, None] / self.periods.float()  # (HW, 2, d / 4)
        angles = angles.flatten(1).repeat(1, 2)  # (HW, d): plane i and plane i + d / 2 share an angle
        return angles.sin(), angles.cos()


def apply_rope(x: Tensor, sin: Tensor, cos: Tensor) -> Tensor:
    """Rotate x (..., n, d) by the angles of sin, cos (n, d): channel i pairs with channel i + d / 2.

    Computed in float32 (the official model's RoPE dtype for every released ViT) and returned in x's dtype.
    """
    x32 = x.float()
    first, second = x32.chunk(2, dim=-1)
    rotated = torch.cat([-second, first], dim=-1)
    return (x32 * cos + rotated * sin).to(x.dtype)
