"""Axial rotary position embedding of DINOv3 (Siméoni et al. 2025; RoPE: Su et al. 2021), via timm.

Each patch token gets a 2-D coordinate in [-1, 1]: its cell centre over the grid's height and width
("separate" normalisation), or over the grid's longer / shorter side ("max" / "min"). A head of
``d`` channels is rotated in ``d / 2`` planes: channel ``i`` pairs with channel ``i + d / 2``; the first
``d / 4`` planes turn with the row coordinate, the next ``d / 4`` with the column coordinate, at the
angles ``2 pi * coordinate / period`` for the ``d / 4`` periods stored in the ``periods`` buffer.
Only patch tokens are rotated; class and register (storage) tokens carry no position.

In training DINOv3 perturbs the coordinates (``shift``, ``jitter``, ``rescale``: a random shift, a
random per-axis and a random global log-uniform scale per forward); in eval mode none applies.

timm's :class:`RotaryEmbeddingDinoV3` computes the coordinates, their perturbation, the periods and the
tables; this subclass keeps the official state dict (a persistent ``periods``) and float32 tables.
"""
from typing import Optional, Tuple

from timm.layers import RotaryEmbeddingDinoV3, apply_rot_embed
from torch import Tensor, nn

NORMALIZE_COORDS = ('separate', 'max', 'min')


class RopePositionEmbedding(RotaryEmbeddingDinoV3):
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
        head_dim = embed_dim // num_heads
        if embed_dim % num_heads or head_dim % 4:
            raise ValueError(f'RoPE: embed_dim={embed_dim} / num_heads={num_heads} must give a head width '
                             f'that is a multiple of 4 (one rotation plane pair per axis)')
        if (base is None) == (min_period is None or max_period is None):
            raise ValueError(f'RoPE: give base (got {base!r}) or both min_period and max_period (got '
                             f'{min_period!r}, {max_period!r}), not both and not neither')
        if normalize_coords not in NORMALIZE_COORDS:
            raise ValueError(f'RoPE: normalize_coords={normalize_coords!r} is not one of {NORMALIZE_COORDS}')
        super().__init__(head_dim, temperature=base, min_period=min_period, max_period=max_period,
                         normalize_coords=normalize_coords, rotate_half=True, shift_coords=shift_coords,
                         jitter_coords=jitter_coords, rescale_coords=rescale_coords)
        self.head_dim = head_dim
        # persistent, unlike timm's: official files carry the periods and they load like a weight
        self.register_buffer('periods', self.periods, persistent=True)

    def _apply(self, fn, *args, **kwargs):
        # Plain nn.Module casting, then periods back to float32: the released DINOv3 models compute
        # RoPE in float32 whatever the model's dtype, and timm's own _apply would replace the periods
        # loaded from a file by recomputed, non-persistent ones on a down-cast.
        module = nn.Module._apply(self, fn, *args, **kwargs)
        self.periods = self.periods.float()
        return module

    def forward(self, H: int, W: int) -> Tuple[Tensor, Tensor]:
        """sin, cos: (H * W, head_dim) each, in float32, for the row-major (H, W) grid."""
        sin, cos = self.get_embed([H, W]).chunk(2, dim=-1)
        return sin, cos


def apply_rope(x: Tensor, sin: Tensor, cos: Tensor) -> Tensor:
    """Rotate x (..., n, d) by the angles of sin, cos (n, d): channel i pairs with channel i + d / 2.

    Computed in float32 (the official model's RoPE dtype for every released ViT) and returned in x's dtype.
    """
    return apply_rot_embed(x.float(), sin, cos, half=True).to(x.dtype)
