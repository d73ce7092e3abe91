"""The plain ViT that ViT-Adapter wraps: DINOv2 (Oquab et al. 2023) and DINOv3 (Siméoni et al. 2025).

Patch embedding, then pre-norm blocks with LayerScale whose attention is global or windowed
(ViTDet, Li et al. 2022). Positions are either DINOv2's absolute embedding, stored for the
pre-training grid and resized to each input, or DINOv3's axial RoPE (:mod:`..layers.rope`) applied
to q and k of the patch tokens in every block. Optional prefix tokens go in front of the patch
tokens: the class token and register tokens (DINOv2 ``register_tokens``, DINOv3 ``storage_tokens``),
both in the order [class, registers, patches] of the official models. Without prefix tokens
(DINOv2 as the original ViT-Adapter runs it) the adapter reads the block outputs directly.

Prefix tokens in windowed blocks: a window's patch tokens attend to their window AND to all prefix
tokens, and the prefix tokens attend to every token (global). Pretraining always let every patch token
see the class and register tokens, and the registers are where the pretrained model keeps its global
information (Darcet et al. 2024: without them it repurposes patch tokens for it); cutting them off in
windowed blocks would move the patch tokens' attention away from what the weights were trained for,
and letting the few prefix tokens see everything keeps them global summaries. The cost is P extra keys
per window and P global query rows. Windows keep their tokens' global RoPE coordinates: q and k are
rotated on the whole grid before the grid is cut into windows.
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from timm.layers import DropPath, PatchEmbed, resample_abs_pos_embed
from torch import Tensor, nn

from ..layers.adapter import maybe_checkpoint
from ..layers.linear import OneDNNLinear, act_linear, onednn_linear
from ..layers.rope import RopePositionEmbedding, apply_rope
from .arguments import SWIGLU_ALIGN, check_vit_arguments, ffn_hidden_dim

FFN_TYPES = ('mlp', *SWIGLU_ALIGN)
POS_EMBED_TYPES = ('abs', 'rope')
RopeTables = Tuple[Tensor, Tensor]  # sin, cos: (H * W, head_dim) each


def attention(qkv: Tensor, num_heads: int, attn_mask: Optional[Tensor] = None,
              extra_kv: Optional[Tensor] = None) -> Tensor:
    """Scaled dot-product attention of packed q, k, v: (B, n, 3C) -> (B, n, C).

    extra_kv (B, P, 2C): packed keys and values that every query also attends to (prefix tokens),
    placed after the n keys of qkv and before the zero key of attn_mask.
    """
    B, n, C3 = qkv.shape
    # unbind, not permute: the backward then stacks the q, k, v gradients straight into qkv's layout
    q, k, v = (t.transpose(1, 2) for t in qkv.view(B, n, 3, num_heads, C3 // (3 * num_heads)).unbind(2))
    if extra_kv is not None:
        k_extra, v_extra = (t.transpose(1, 2) for t in extra_kv.unflatten(-1, (2, num_heads, -1)).unbind(2))
        k, v = torch.cat([k, k_extra], 2), torch.cat([v, v_extra], 2)
    if attn_mask is not None:  # one extra zero key and value, weighed by attn_mask (see window_attention)
        zero = k.new_zeros(B, num_heads, 1, k.shape[-1])
        k, v = torch.cat([k, zero], 2), torch.cat([v, zero], 2)
    x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, heads, n, d)
    return x.transpose(1, 2).reshape(B, n, C3 // 3)


def window_attention(qkv: Tensor, num_heads: int, window_size: int,
                     prefix_kv: Optional[Tensor] = None) -> Tensor:
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
        prefix_kv (Tensor, optional): (B, P, 2C) packed keys and values of prefix tokens that every
            window attends to besides its own tokens.

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
                cols.append(_region_attention(qkv[:, top:bottom, left:right], num_heads, window_size,
                                              prefix_kv))
        if cols:
            rows.append(torch.cat(cols, 2))
    return torch.cat(rows, 1)


def _region_attention(region: Tensor, num_heads: int, window_size: int,
                      prefix_kv: Optional[Tensor] = None) -> Tensor:
    """window_attention of a (B, h, w, 3C) region tiled by equal windows of min(h, ws) x min(w, ws)."""
    B, h, w, C3 = region.shape
    wh, ww = min(h, window_size), min(w, window_size)
    x = region.reshape(B, h // wh, wh, w // ww, ww, C3).transpose(2, 3).reshape(-1, wh * ww, C3)
    extra = None
    if prefix_kv is not None:  # the windows of one image are consecutive along the batch dim
        extra = prefix_kv.repeat_interleave((h // wh) * (w // ww), dim=0)  # (B * windows, P, 2C)
    n_pad = window_size * window_size - wh * ww
    mask = None
    if n_pad:  # logits 0 on the real keys, log(n_pad) on one zero key standing for the padded ones
        mask = x.new_zeros(1, wh * ww + (0 if extra is None else extra.shape[1]) + 1)
        mask[0, -1] = math.log(n_pad)
    x = attention(x, num_heads, mask, extra)  # (B * windows, wh * ww, C)
    x = x.view(B, h // wh, w // ww, wh, ww, C3 // 3).transpose(2, 3)
    return x.reshape(B, h, w, C3 // 3)


class MaskedBiasLinear(OneDNNLinear):
    """DINOv3's qkv projection: the bias is multiplied by the ``bias_mask`` buffer, whose k third is 0
    (k gets no bias; the official files store the mask as ``attn.qkv.bias_mask``)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, bias=True)
        mask = torch.ones(out_features)
        mask[out_features // 3:2 * out_features // 3] = 0
        self.register_buffer('bias_mask', mask)

    def forward(self, x: Tensor) -> Tensor:
        return onednn_linear(x, self.weight, self.bias * self.bias_mask.to(self.bias.dtype))


class Attention(nn.Module):
    """Multi-head self-attention over all tokens, or within non-overlapping windows.

    Args:
        dim (int): token channels.
        num_heads (int): attention heads.
        window_size (int, optional): side of the square windows in tokens (see
            :func:`window_attention` for the border windows); None for global attention.
        qkv_bias (bool): the qkv projection has a bias (DINOv3 7B: none).
        mask_k_bias (bool): DINOv3's masked qkv bias, see :class:`MaskedBiasLinear`.
    """

    def __init__(self, dim: int, num_heads: int, window_size: Optional[int] = None, qkv_bias: bool = True,
                 mask_k_bias: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'Attention: dim={dim} must be divisible by num_heads={num_heads}')
        self.num_heads = num_heads
        self.window_size = window_size
        if mask_k_bias and qkv_bias:
            self.qkv = MaskedBiasLinear(dim, dim * 3)
        else:
            self.qkv = OneDNNLinear(dim, dim * 3, bias=qkv_bias)
        self.proj = OneDNNLinear(dim, dim)

    def forward(self, x: Tensor, hw: Tuple[int, int], rope: Optional[RopeTables] = None,
                num_prefix: int = 0) -> Tensor:
        """x (B, P + H * W, C): P prefix tokens, then H * W patch tokens in row-major order; hw = (H, W);
        rope: sin, cos tables of the patch tokens, or None."""
        B, N, C = x.shape
        qkv = self.qkv(x)  # (B, N, 3C)
        if rope is not None:
            qkv = _rotate_qk(qkv, rope, self.num_heads, num_prefix)
        if not self.window_size:
            return self.proj(attention(qkv, self.num_heads))
        if not num_prefix:
            x = window_attention(qkv.view(B, *hw, 3 * C), self.num_heads, self.window_size).reshape(B, N, C)
            return self.proj(x)
        # prefix tokens: queries over all tokens; patch tokens: their window plus the prefix tokens
        prefix, patches = qkv[:, :num_prefix], qkv[:, num_prefix:]
        q, k, v = (t.transpose(1, 2) for t in qkv.view(B, N, 3, self.num_heads, -1).unbind(2))
        out_prefix = F.scaled_dot_product_attention(q[:, :, :num_prefix], k, v)  # (B, heads, P, d)
        out_patches = window_attention(patches.reshape(B, *hw, 3 * C), self.num_heads, self.window_size,
                                       prefix_kv=prefix[..., C:])
        x = torch.cat([out_prefix.transpose(1, 2).reshape(B, num_prefix, C), out_patches.reshape(B, -1, C)], 1)
        return self.proj(x)


def _rotate_qk(qkv: Tensor, rope: RopeTables, num_heads: int, num_prefix: int) -> Tensor:
    """qkv (B, N, 3C) with q and k of the patch tokens (all but the first num_prefix) rotated."""
    B, N, C3 = qkv.shape
    sin, cos = (t[:, None] for t in rope)  # (HW, 1, d): the same angles for every head
    q, k, v = qkv.view(B, N, 3, num_heads, -1).unbind(2)  # (B, N, heads, d)
    q = torch.cat([q[:, :num_prefix], apply_rope(q[:, num_prefix:], sin, cos)], 1)
    k = torch.cat([k[:, :num_prefix], apply_rope(k[:, num_prefix:], sin, cos)], 1)
    return torch.stack([q, k, v], 2).reshape(B, N, C3)


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
        self.fc1 = OneDNNLinear(dim, 2 * hidden_dim if gated else hidden_dim)
        self.act = act_layer()
        self.fc2 = OneDNNLinear(hidden_dim, dim)

    def hidden(self, x: Tensor) -> Tensor:
        """fc1's output -> fc2's input (element-wise)."""
        if self.gated:
            x1, x2 = x.chunk(2, dim=-1)
            return self.act(x1) * x2
        return self.act(x)

    def forward(self, x: Tensor) -> Tensor:
        # the hidden activations are recomputed from fc1's output for the backward pass
        return act_linear(self.fc1(x), self.hidden, self.fc2.weight, self.fc2.bias)


def build_ffn(dim: int, mlp_ratio: float, ffn_type: str) -> nn.Module:
    """The block's feed-forward net; parameters are ``fc1`` and ``fc2`` either way.

    'mlp': fc1 (dim -> dim * mlp_ratio), GELU, fc2 (ViT-S/B/L).
    'swiglu': DINOv2's fused SwiGLU (ViT-g) and DINOv3's (S+, H+): hidden = dim * mlp_ratio * 2/3
    rounded up to a multiple of 8; fc1 (dim -> 2 * hidden) = DINOv2's w12 = DINOv3's [w1; w2], output
    silu(x1) * x2 with x1, x2 = fc1(x).chunk(2), fc2 (hidden -> dim) = their w3.
    'swiglu64': the same rounded up to a multiple of 64 (DINOv3 7B).
    """
    hidden = ffn_hidden_dim(dim, mlp_ratio, ffn_type)
    if ffn_type == 'mlp':
        return Mlp(dim, hidden)
    if ffn_type in SWIGLU_ALIGN:
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
        norm_eps (float): LayerNorm epsilon (DINOv2 1e-6, DINOv3 1e-5).
        qkv_bias (bool): the qkv projection has a bias.
        mask_k_bias (bool): DINOv3's k-masked qkv bias.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, ffn_type: str = 'mlp',
                 drop_path: float = 0.0, window_size: Optional[int] = None, with_cp: bool = False,
                 norm_eps: float = 1e-6, qkv_bias: bool = True, mask_k_bias: bool = False):
        super().__init__()
        self.with_cp = with_cp
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, window_size, qkv_bias=qkv_bias, mask_k_bias=mask_k_bias)
        self.gamma1 = nn.Parameter(torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = build_ffn(dim, mlp_ratio, ffn_type)
        self.gamma2 = nn.Parameter(torch.ones(dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _forward(self, x: Tensor, hw: Tuple[int, int], rope: Optional[RopeTables] = None,
                 num_prefix: int = 0) -> Tensor:
        x = x + self.drop_path(self.gamma1 * self.attn(self.norm1(x), hw, rope, num_prefix))
        return x + self.drop_path(self.gamma2 * self.mlp(self.norm2(x)))

    def forward(self, x: Tensor, hw: Tuple[int, int], rope: Optional[RopePositionEmbedding] = None,
                num_prefix: int = 0) -> Tensor:
        """x (B, P + H * W, C) with num_prefix = P prefix tokens first, hw = (H, W) -> same shape.

        rope: the ViT's RoPE module; its tables are drawn here for each block, as DINOv3 does (in
        training each block then sees its own random coordinate perturbation).
        """
        if rope is None and not num_prefix:  # DINOv2 as the original ViT-Adapter runs it
            return maybe_checkpoint(self._forward, x, hw, with_cp=self.with_cp)
        tables = rope(*hw) if rope is not None else None
        return maybe_checkpoint(self._forward, x, hw, tables, num_prefix, with_cp=self.with_cp)


def _per_block(name: str, value, depth: int) -> list:
    """A per-block setting given once (for all blocks) or as a list of `depth` entries."""
    if not isinstance(value, (list, tuple)):
        return [value] * depth
    if len(value) != depth:
        raise ValueError(f'{name} has {len(value)} entries but depth={depth}: give one per block '
                         f'or a single value for all')
    return list(value)


class ViT(BaseModule):
    """Plain ViT of DINOv2 or DINOv3: patch embedding, positions, optional prefix tokens, blocks.

    Args:
        pretrain_size (int): side of the pre-training images; the absolute position embedding is
            stored for a (pretrain_size // patch_size)**2 grid plus one class-token slot (used only
            with ``with_cls_token``). Unused with RoPE.
        img_size (int, optional): the original's name for the same resolution; must give the same
            grid as pretrain_size when set.
        patch_size (int): side of the square patches in pixels.
        embed_dim (int): token channels.
        depth (int): number of blocks.
        num_heads (int): attention heads.
        mlp_ratio (float): FFN hidden width over embed_dim.
        ffn_type (str): 'mlp' (ViT-S/B/L), 'swiglu' (DINOv2 ViT-g, DINOv3 S+/H+), 'swiglu64' (DINOv3 7B).
        drop_path_rate (float): stochastic depth, rising linearly from 0 at the first block to this.
        window_attn (bool or list[bool]): windowed attention, for all blocks or per block.
        window_size (int or list[int]): window side in tokens, for all blocks or per block (entries of
            blocks without window attention are ignored and may be None).
        with_cp (bool): activation checkpointing per block.
        pos_embed_type (str): 'abs' (DINOv2's absolute embedding, ``pos_embed``) or 'rope' (DINOv3's
            axial RoPE, ``rope_embed.periods``).
        rope_cfg (dict, optional): keyword arguments of :class:`RopePositionEmbedding` (base,
            normalize_coords, shift/jitter/rescale_coords); DINOv3's hub defaults when None.
        with_cls_token (bool): carry the class token ``cls_token`` through the blocks (with 'abs' it
            gets the position embedding's class slot, as in DINOv2).
        num_register_tokens (int): register tokens ``register_tokens`` carried after the class token
            (DINOv2 reg4: 4; DINOv3's 4 storage tokens).
        final_norm (bool): keep the final LayerNorm ``norm`` (used by :meth:`get_intermediate_layers`).
        norm_eps (float): LayerNorm epsilon (DINOv2 1e-6, DINOv3 1e-5).
        qkv_bias (bool): the qkv projections have a bias (DINOv3 7B: none).
        mask_k_bias (bool): DINOv3's k-masked qkv bias (``attn.qkv.bias_mask``).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, pretrain_size: int = 224, img_size: Optional[int] = None, patch_size: int = 16,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 ffn_type: str = 'mlp', drop_path_rate: float = 0.0,
                 window_attn: Union[bool, Sequence[bool]] = False,
                 window_size: Union[int, None, Sequence[Optional[int]]] = 14, with_cp: bool = False,
                 pos_embed_type: str = 'abs', rope_cfg: Optional[dict] = None, with_cls_token: bool = False,
                 num_register_tokens: int = 0, final_norm: bool = False, norm_eps: float = 1e-6,
                 qkv_bias: bool = True, mask_k_bias: bool = False, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if ffn_type not in FFN_TYPES:
            raise ValueError(f'ffn_type={ffn_type!r} is not one of {FFN_TYPES}')
        if pos_embed_type not in POS_EMBED_TYPES:
            raise ValueError(f'pos_embed_type={pos_embed_type!r} is not one of {POS_EMBED_TYPES}')
        if rope_cfg is not None and pos_embed_type != 'rope':
            raise ValueError(f"rope_cfg={rope_cfg!r} is given but pos_embed_type={pos_embed_type!r}; "
                             "set pos_embed_type='rope' or drop rope_cfg")
        if isinstance(num_register_tokens, bool) or not isinstance(num_register_tokens, int) \
                or num_register_tokens < 0:
            raise ValueError(f'num_register_tokens={num_register_tokens!r}: must be an integer >= 0 '
                             '(4 for DINOv2 *_reg4 and DINOv3)')
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
        self.pos_embed_type = pos_embed_type
        self.num_register_tokens = num_register_tokens
        self.num_prefix_tokens = int(with_cls_token) + num_register_tokens

        self.patch_embed = PatchEmbed(img_size=None, patch_size=patch_size, in_chans=3,
                                      embed_dim=embed_dim, output_fmt='NHWC', strict_img_size=False)
        if pos_embed_type == 'abs':
            self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
            self.rope_embed = None
        else:
            self.rope_embed = RopePositionEmbedding(embed_dim, num_heads, **(rope_cfg or {}))
        if with_cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        if num_register_tokens:
            self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
        drop_path = torch.linspace(0, drop_path_rate, depth, device='cpu').tolist()
        self.blocks = nn.ModuleList([
            Block(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, ffn_type=ffn_type,
                  drop_path=drop_path[i], window_size=window_size[i] if window_attn[i] else None,
                  with_cp=with_cp, norm_eps=norm_eps, qkv_bias=qkv_bias, mask_k_bias=mask_k_bias)
            for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps) if final_norm else None

    def resized_pos_embed(self, hw: Tuple[int, int]) -> Tensor:
        """The stored grid embedding (class slot dropped) resized bicubically to hw: (1, H * W, C)."""
        return resample_abs_pos_embed(self.pos_embed[:, 1:], new_size=list(hw),
                                      old_size=list(self.pos_grid), num_prefix_tokens=0,
                                      interpolation='bicubic', antialias=False, align_corners=False)

    def embed(self, img: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Patch tokens (plus the absolute position embedding): (B, 3, H, W) -> (B, h * w, C), (h, w)."""
        x = self.patch_embed(img)  # (B, h, w, C)
        hw = (x.shape[1], x.shape[2])
        if self.rope_embed is not None:
            return x.flatten(1, 2), hw
        return x.flatten(1, 2) + self.resized_pos_embed(hw), hw

    def prefix_tokens(self, batch: int) -> Optional[Tensor]:
        """[class token, register tokens] as (batch, P, C), or None without prefix tokens."""
        tokens = []
        if hasattr(self, 'cls_token'):
            cls = self.cls_token
            tokens.append(cls + self.pos_embed[:, :1] if self.rope_embed is None else cls)
        if self.num_register_tokens:
            tokens.append(self.register_tokens)
        return torch.cat(tokens, 1).expand(batch, -1, -1) if tokens else None

    def tokens(self, img: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """The blocks' input: prefix tokens then patch tokens, (B, P + h * w, C), and (h, w)."""
        x, hw = self.embed(img)
        prefix = self.prefix_tokens(x.shape[0])
        return (x if prefix is None else torch.cat([prefix, x], 1)), hw

    def get_intermediate_layers(self, img: Tensor, n: Union[int, Sequence[int]] = 1,
                                norm: bool = True) -> Tuple[Tensor, ...]:
        """Patch-token maps of some blocks, like the official DINOv2/DINOv3 method with reshape=True.

        Args:
            img (Tensor): (B, 3, H, W).
            n (int or list[int]): the last n blocks, or these block indices (returned in block order).
            norm (bool): apply the final LayerNorm (needs ``final_norm=True``).

        Returns:
            tuple[Tensor]: (B, C, H // patch_size, W // patch_size) per block taken.
        """
        take = set(range(self.depth - n, self.depth)) if isinstance(n, int) else set(n)
        if not take or not all(isinstance(i, int) and 0 <= i < self.depth for i in take):
            raise ValueError(f'get_intermediate_layers: n={n!r} must be a count in 1..{self.depth} or '
                             f'block indices in 0..{self.depth - 1}')
        if norm and self.norm is None:
            raise ValueError('get_intermediate_layers(norm=True) needs the final norm: build the ViT with '
                             'final_norm=True (and load it from the checkpoint)')
        x, (h, w) = self.tokens(img)
        P = self.num_prefix_tokens
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x, (h, w), self.rope_embed, P)
            if i in take:
                outputs.append(self.norm(x) if norm else x)
        return tuple(out[:, P:].reshape(out.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous()
                     for out in outputs)

    def vit_parameters(self) -> List[nn.Parameter]:
        """The parameters of the ViT itself (patch and position embedding, tokens, blocks, final norm)."""
        params = [self.pos_embed] if self.rope_embed is None else []
        params += [getattr(self, name) for name in ('cls_token', 'register_tokens') if hasattr(self, name)]
        params += [*self.patch_embed.parameters(), *self.blocks.parameters()]
        return params + (list(self.norm.parameters()) if self.norm is not None else [])
