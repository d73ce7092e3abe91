"""The plain DINOv2-style ViT that ViT-Adapter wraps (Dosovitskiy et al. 2021; Oquab et al. 2023).

Patch embedding, an absolute position embedding stored for the pre-training resolution and resized
to each input, and pre-norm blocks with LayerScale whose attention is global or windowed (ViTDet,
Li et al. 2022). No class token and no final norm: the adapter reads the block outputs directly.
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from timm.layers import DropPath, PatchEmbed, resample_abs_pos_embed
from torch import Tensor, nn

from ..layers.adapter import maybe_checkpoint
from ..layers.linear import Linear
from .arguments import check_vit_arguments, ffn_hidden_dim

FFN_TYPES = ('mlp', 'swiglu')


def attention(qkv: Tensor, num_heads: int, attn_mask: Optional[Tensor] = None) -> Tensor:
    """Scaled dot-product attention of packed q, k, v: (B, n, 3C) -> (B, n, C)."""
    B, n, C3 = qkv.shape
    # unbind, not permute: the backward then stacks the q, k, v gradients straight into qkv's layout
    q, k, v = (t.transpose(1, 2) for t in qkv.view(B, n, 3, num_heads, C3 // (3 * num_heads)).unbind(2))
    if attn_mask is not None:  # one extra zero key and value, weighed by attn_mask (see window_attention)
        zero = k.new_zeros(B, num_heads, 1, k.shape[-1])
        k, v = torch.cat([k, zero], 2), torch.cat([v, zero], 2)
    x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, heads, n, d)
    return x.transpose(1, 2).reshape(B, n, C3 // 3)


def window_attention(qkv: Tensor, num_heads: int, window_size: int) -> Tensor:
    """Attention within the window_size x window_size windows that tile a token grid.

    Windows crossing the right or bottom border are zero-padded like in the original ViT-Adapter
    (F.pad on the projected q, k, v): a padded key has logit 0 and value 0 but takes part in the
    softmax. The grid is cut into up to four regions of equal windows (whole windows, right strip,
    bottom strip, corner) and, in a region whose windows hold n real tokens, the
    n_pad = window_size**2 - n padded keys are one zero key with logit bias log(n_pad): the same
    softmax, without attention rows for padded queries or columns for padded keys.

    Args:
        qkv (Tensor): (B, H, W, 3C) projected q, k, v on the token grid.
        num_heads (int): attention heads.
        window_size (int): window side in tokens.

    Returns:
        Tensor: (B, H, W, C).
    """
    B, H, W, C3 = qkv.shape
    full_h, full_w = H - H % window_size, W - W % window_size
    rows = []
    for top, bottom in ((0, full_h), (full_h, H)):
        cols = []
        for left, right in ((0, full_w), (full_w, W)):
            if bottom > top and right > left:
                cols.append(_region_attention(qkv[:, top:bottom, left:right], num_heads, window_size))
        if cols:
            rows.append(torch.cat(cols, 2))
    return torch.cat(rows, 1)


def _region_attention(region: Tensor, num_heads: int, window_size: int) -> Tensor:
    """window_attention of a (B, h, w, 3C) region tiled by equal windows of min(h, ws) x min(w, ws)."""
    B, h, w, C3 = region.shape
    wh, ww = min(h, window_size), min(w, window_size)
    x = region.reshape(B, h // wh, wh, w // ww, ww, C3).transpose(2, 3).reshape(-1, wh * ww, C3)
    n_pad = window_size * window_size - wh * ww
    mask = None
    if n_pad:  # logits 0 on the real keys, log(n_pad) on one zero key standing for the padded ones
        mask = x.new_zeros(1, wh * ww + 1)
        mask[0, -1] = math.log(n_pad)
    x = attention(x, num_heads, mask)  # (B * windows, wh * ww, C)
    x = x.view(B, h // wh, w // ww, wh, ww, C3 // 3).transpose(2, 3)
    return x.reshape(B, h, w, C3 // 3)


class Attention(nn.Module):
    """Multi-head self-attention over all tokens, or within non-overlapping windows.

    Args:
        dim (int): token channels.
        num_heads (int): attention heads.
        window_size (int, optional): side of the square windows in tokens (see
            :func:`window_attention` for the border windows); None for global attention.
    """

    def __init__(self, dim: int, num_heads: int, window_size: Optional[int] = None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'Attention: dim={dim} must be divisible by num_heads={num_heads}')
        self.num_heads = num_heads
        self.window_size = window_size
        self.qkv = Linear(dim, dim * 3, bias=True)
        self.proj = Linear(dim, dim)

    def forward(self, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        """x (B, N, C) with N = H * W tokens in row-major order; hw = (H, W)."""
        B, N, C = x.shape
        qkv = self.qkv(x)  # (B, N, 3C)
        if self.window_size:
            x = window_attention(qkv.view(B, *hw, 3 * C), self.num_heads, self.window_size).reshape(B, N, C)
        else:
            x = attention(qkv, self.num_heads)
        return self.proj(x)


class Mlp(nn.Module):
    """Feed-forward net fc1, activation, fc2; gated (SwiGLU, Shazeer 2020): fc1 gives x1 and x2
    (halves of its output) and the hidden activation is act(x1) * x2.

    Args:
        dim (int): input and output channels.
        hidden_dim (int): hidden channels (fc1 gives twice as many when gated).
        act_layer (type): activation, e.g. nn.GELU or nn.SiLU.
        gated (bool): SwiGLU-style gating.
    """

    def __init__(self, dim: int, hidden_dim: int, act_layer=nn.GELU, gated: bool = False):
        super().__init__()
        self.gated = gated
        self.fc1 = Linear(dim, 2 * hidden_dim if gated else hidden_dim)
        self.act = act_layer()
        self.fc2 = Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc1(x)
        if self.gated:
            x1, x2 = x.chunk(2, dim=-1)
            return self.fc2(self.act(x1) * x2)
        return self.fc2(self.act(x))


def build_ffn(dim: int, mlp_ratio: float, ffn_type: str) -> nn.Module:
    """The block's feed-forward net; parameters are ``fc1`` and ``fc2`` either way.

    'mlp': fc1 (dim -> dim * mlp_ratio), GELU, fc2 (ViT-S/B/L).
    'swiglu': DINOv2's fused SwiGLU (ViT-g): hidden = dim * mlp_ratio * 2/3 rounded up to a multiple
    of 8; fc1 (dim -> 2 * hidden) = DINOv2's w12, output silu(x1) * x2 with x1, x2 = fc1(x).chunk(2),
    fc2 (hidden -> dim) = DINOv2's w3.
    """
    hidden = ffn_hidden_dim(dim, mlp_ratio, ffn_type)
    if ffn_type == 'mlp':
        return Mlp(dim, hidden)
    if ffn_type == 'swiglu':
        return Mlp(dim, hidden, act_layer=nn.SiLU, gated=True)
    raise ValueError(f'ffn_type={ffn_type!r} is not one of {FFN_TYPES}')


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale (Touvron et al., CaiT), as in DINOv2.

    Args:
        dim (int): token channels.
        num_heads (int): attention heads.
        mlp_ratio (float): FFN hidden width over dim.
        ffn_type (str): 'mlp' or 'swiglu', see :func:`build_ffn`.
        drop_path (float): stochastic depth rate of both residual branches.
        window_size (int, optional): windowed attention of this side; None for global attention.
        with_cp (bool): recompute the block in the backward pass to save memory.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, ffn_type: str = 'mlp',
                 drop_path: float = 0.0, window_size: Optional[int] = None, with_cp: bool = False):
        super().__init__()
        self.with_cp = with_cp
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, window_size)
        self.gamma1 = nn.Parameter(torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = build_ffn(dim, mlp_ratio, ffn_type)
        self.gamma2 = nn.Parameter(torch.ones(dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _forward(self, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        x = x + self.drop_path(self.gamma1 * self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.gamma2 * self.mlp(self.norm2(x)))

    def forward(self, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        """x (B, H * W, C), hw = (H, W) -> (B, H * W, C)."""
        return maybe_checkpoint(self._forward, x, hw, with_cp=self.with_cp)


def _per_block(name: str, value, depth: int) -> list:
    """A per-block setting given once (for all blocks) or as a list of `depth` entries."""
    if not isinstance(value, (list, tuple)):
        return [value] * depth
    if len(value) != depth:
        raise ValueError(f'{name} has {len(value)} entries but depth={depth}: give one per block '
                         f'or a single value for all')
    return list(value)


class ViT(BaseModule):
    """DINOv2-style plain ViT: patch embedding, resized absolute position embedding, blocks.

    Args:
        pretrain_size (int): side of the pre-training images; the position embedding is stored for a
            (pretrain_size // patch_size)**2 grid plus one (unused) class-token slot.
        img_size (int, optional): the original's name for the same resolution; must give the same
            grid as pretrain_size when set.
        patch_size (int): side of the square patches in pixels.
        embed_dim (int): token channels.
        depth (int): number of blocks.
        num_heads (int): attention heads.
        mlp_ratio (float): FFN hidden width over embed_dim.
        ffn_type (str): 'mlp' (ViT-S/B/L) or 'swiglu' (ViT-g).
        drop_path_rate (float): stochastic depth, rising linearly from 0 at the first block to this.
        window_attn (bool or list[bool]): windowed attention, for all blocks or per block.
        window_size (int or list[int]): window side in tokens, for all blocks or per block (entries of
            blocks without window attention are ignored and may be None).
        with_cp (bool): activation checkpointing per block.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, pretrain_size: int = 224, img_size: Optional[int] = None, patch_size: int = 16,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 ffn_type: str = 'mlp', drop_path_rate: float = 0.0,
                 window_attn: Union[bool, Sequence[bool]] = False,
                 window_size: Union[int, None, Sequence[Optional[int]]] = 14, with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if ffn_type not in FFN_TYPES:
            raise ValueError(f'ffn_type={ffn_type!r} is not one of {FFN_TYPES}')
        check_vit_arguments(pretrain_size=pretrain_size, patch_size=patch_size, embed_dim=embed_dim,
                            depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, ffn_type=ffn_type,
                            drop_path_rate=drop_path_rate)
        grid = pretrain_size // patch_size
        if img_size is not None and img_size // patch_size != grid:
            raise ValueError(f'img_size={img_size} and pretrain_size={pretrain_size} give different '
                             f'position grids with patch_size={patch_size}; set img_size=None or equal '
                             f'to pretrain_size')
        window_attn = _per_block('window_attn', window_attn, depth)
        window_size = _per_block('window_size', window_size, depth)
        for i, (windowed, side) in enumerate(zip(window_attn, window_size)):
            if windowed and not (isinstance(side, int) and side > 0):
                raise ValueError(f'window_size[{i}]={side!r}: block {i} has window_attn=True, so it '
                                 f'needs a positive integer window side')
        self.embed_dim = embed_dim
        self.depth = depth
        self.patch_size = patch_size
        self.pretrain_size = pretrain_size
        self.ffn_type = ffn_type
        self.pos_grid = (grid, grid)

        self.patch_embed = PatchEmbed(img_size=None, patch_size=patch_size, in_chans=3,
                                      embed_dim=embed_dim, output_fmt='NHWC', strict_img_size=False)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        drop_path = torch.linspace(0, drop_path_rate, depth, device='cpu').tolist()
        self.blocks = nn.ModuleList([
            Block(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, ffn_type=ffn_type,
                  drop_path=drop_path[i], window_size=window_size[i] if window_attn[i] else None,
                  with_cp=with_cp)
            for i in range(depth)])

    def resized_pos_embed(self, hw: Tuple[int, int]) -> Tensor:
        """The stored grid embedding (class slot dropped) resized bicubically to hw: (1, H * W, C)."""
        return resample_abs_pos_embed(self.pos_embed[:, 1:], new_size=list(hw),
                                      old_size=list(self.pos_grid), num_prefix_tokens=0,
                                      interpolation='bicubic', antialias=False, align_corners=False)

    def embed(self, img: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Patch tokens plus position embedding: (B, 3, H, W) -> (B, h * w, C) and (h, w)."""
        x = self.patch_embed(img)  # (B, h, w, C)
        hw = (x.shape[1], x.shape[2])
        return x.flatten(1, 2) + self.resized_pos_embed(hw), hw

    def vit_parameters(self) -> List[nn.Parameter]:
        """The parameters of the ViT itself (patch embedding, position embedding, blocks)."""
        return [self.pos_embed, *self.patch_embed.parameters(), *self.blocks.parameters()]
