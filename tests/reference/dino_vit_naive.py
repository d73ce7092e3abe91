"""Naive re-implementations of the official DINOv3 and DINOv2-with-registers ViTs, for tests only.

Written for obviousness from a reading of facebookresearch/dinov3 (models/vision_transformer.py,
layers/{attention, block, ffn_layers, rope_position_encoding}.py) and facebookresearch/dinov2
(models/vision_transformer.py), independently of ``mmdet_dinov2``: explicit softmax attention, the
RoPE rotation written plane by plane, eval-mode forward only. Module and parameter names are the
official ones, so the official checkpoints' layout (``cls_token``, ``storage_tokens``,
``mask_token``, ``rope_embed.periods``, ``blocks.N.attn.qkv.bias_mask``, ``ls1.gamma``,
``mlp.w1/w2/w3``, ``register_tokens``, ``mlp.w12``...) is what ``state_dict()`` gives.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

# the ViT-Adapter reference: its extractor, spatial prior module, centres
from tests.reference import vit_adapter_naive as naive


def naive_softmax_attention(q, k, v):
    """softmax(q k^T / sqrt(d)) v over the last two dims."""
    logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weights = torch.exp(logits - logits.max(-1, keepdim=True).values)
    return (weights / weights.sum(-1, keepdim=True)) @ v


class NaiveLayerScale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))


class NaiveQKV(nn.Linear):
    """nn.Linear plus, when masked, the bias_mask buffer the official LinearKMaskedBias stores."""

    def __init__(self, dim, bias, masked):
        super().__init__(dim, 3 * dim, bias=bias)
        self.masked = masked and bias
        if self.masked:
            mask = torch.ones(3 * dim)
            mask[dim:2 * dim] = 0.0
            self.register_buffer('bias_mask', mask)

    def forward(self, x):
        bias = self.bias
        if self.masked:
            bias = bias * self.bias_mask
        return F.linear(x, self.weight, bias)


class NaiveSwiGLU(nn.Module):
    """DINOv3's unfused SwiGLU (w1, w2, w3) or DINOv2's fused one (w12, w3)."""

    def __init__(self, dim, hidden, fused):
        super().__init__()
        self.fused = fused
        if fused:
            self.w12 = nn.Linear(dim, 2 * hidden)
        else:
            self.w1 = nn.Linear(dim, hidden)
            self.w2 = nn.Linear(dim, hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x):
        if self.fused:
            a, b = self.w12(x).chunk(2, dim=-1)
        else:
            a, b = self.w1(x), self.w2(x)
        return self.w3(a * torch.sigmoid(a) * b)


class NaiveMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(0.5 * h * (1.0 + torch.erf(h / math.sqrt(2.0))))


def rotate_planes(x, angles):
    """Rotate x (..., n, d) in the d/2 planes (i, i + d/2) by angles (n, d/2)."""
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    c, s = torch.cos(angles), torch.sin(angles)
    return torch.cat([a * c - b * s, b * c + a * s], dim=-1)


class NaiveAttention(nn.Module):
    def __init__(self, dim, heads, qkv_bias, mask_k_bias):
        super().__init__()
        self.heads = heads
        self.qkv = NaiveQKV(dim, qkv_bias, mask_k_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, angles=None, window=None):
        """window: None, or (ws, H, W, P): this project's windowed rule (not in DINOv2/DINOv3), see
        :func:`windowed_attention`."""
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads)
        q, k, v = [qkv[:, :, i].transpose(1, 2) for i in range(3)]  # (B, heads, N, d)
        if angles is not None:  # the last angles.shape[0] tokens are the patches
            p = N - angles.shape[0]
            q = torch.cat([q[:, :, :p], rotate_planes(q[:, :, p:], angles)], dim=2)
            k = torch.cat([k[:, :, :p], rotate_planes(k[:, :, p:], angles)], dim=2)
        if window is not None:
            out = windowed_attention(q, k, v, *window)
        else:
            out = naive_softmax_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


def windowed_attention(q, k, v, ws, H, W, P):
    """One masked softmax over [P prefix tokens, the zero-padded (Hp, Wp) grid]: a patch query sees the
    ws x ws window it lies in (padding included: zero q, k, v, as the original ViT-Adapter pads) and
    the prefix tokens; a prefix query sees the prefix tokens and every real patch."""
    B, nh, N, d = q.shape
    Hp, Wp = math.ceil(H / ws) * ws, math.ceil(W / ws) * ws

    def padded(t):
        grid = t[:, :, P:].reshape(B, nh, H, W, d)
        return torch.cat([t[:, :, :P], F.pad(grid, (0, 0, 0, Wp - W, 0, Hp - H)).reshape(B, nh, Hp * Wp, d)], 2)
    qa, ka, va = padded(q), padded(k), padded(v)
    window_id = torch.tensor([(i // ws) * (Wp // ws) + j // ws for i in range(Hp) for j in range(Wp)])
    real = torch.tensor([i < H and j < W for i in range(Hp) for j in range(Wp)])
    M = P + Hp * Wp
    allowed = torch.zeros(M, M, dtype=torch.bool)
    allowed[:P, :P] = True
    allowed[:P, P:] = real[None]
    allowed[P:, :P] = True
    allowed[P:, P:] = window_id[:, None] == window_id[None, :]
    logits = (qa @ ka.transpose(-2, -1) / math.sqrt(d)).masked_fill(~allowed, float('-inf'))
    out = torch.softmax(logits, -1) @ va
    grid = out[:, :, P:].reshape(B, nh, Hp, Wp, d)[:, :, :H, :W].reshape(B, nh, H * W, d)
    return torch.cat([out[:, :, :P], grid], 2)


class NaiveBlock(nn.Module):
    def __init__(self, dim, heads, ffn, hidden, eps, qkv_bias, mask_k_bias):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = NaiveAttention(dim, heads, qkv_bias, mask_k_bias)
        self.ls1 = NaiveLayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        if ffn == 'mlp':
            self.mlp = NaiveMlp(dim, hidden)
        else:
            self.mlp = NaiveSwiGLU(dim, hidden, fused=ffn == 'swiglu_fused')
        self.ls2 = NaiveLayerScale(dim)

    def forward(self, x, angles=None, window=None):
        x = x + self.ls1.gamma * self.attn(self.norm1(x), angles, window)
        return x + self.ls2.gamma * self.mlp(self.norm2(x))


class NaiveRope(nn.Module):
    def __init__(self, head_dim, base=100.0):
        super().__init__()
        n = head_dim // 4
        self.register_buffer('periods', torch.tensor([base ** (4.0 * i / head_dim) for i in range(n)]))

    def angles(self, H, W):
        """(H * W, d/2): per patch, d/4 angles from its row then d/4 from its column coordinate."""
        rows = torch.tensor([2.0 * (i + 0.5) / H - 1.0 for i in range(H)])
        cols = torch.tensor([2.0 * (j + 0.5) / W - 1.0 for j in range(W)])
        out = []
        for i in range(H):
            for j in range(W):
                out.append(torch.cat([2 * math.pi * rows[i] / self.periods,
                                      2 * math.pi * cols[j] / self.periods]))
        return torch.stack(out)


def swiglu_hidden(dim, ratio, align):
    d = int(int(dim * ratio) * 2 / 3)
    return int(math.ceil(d / align) * align)


def read_blocks(vit, x, run, num_prefix, image_hw, n, reshape, norm):
    """get_intermediate_layers' loop, as both official ViTs write it: run every block
    (``run(block, x)``), keep the outputs of the last ``n`` blocks (or of the indices in ``n``),
    final-normed if ``norm``, without the ``num_prefix`` class/register tokens, as (B, C, h, w)
    maps if ``reshape``."""
    take = list(range(len(vit.blocks) - n, len(vit.blocks))) if isinstance(n, int) else list(n)
    outs = []
    for i, blk in enumerate(vit.blocks):
        x = run(blk, x)
        if i in take:
            outs.append(vit.norm(x) if norm else x)
    outs = [o[:, num_prefix:] for o in outs]
    if reshape:
        h, w = image_hw[0] // vit.patch_size, image_hw[1] // vit.patch_size
        outs = [o.reshape(o.shape[0], h, w, -1).permute(0, 3, 1, 2) for o in outs]
    return tuple(outs)


class NaiveDinov3ViT(nn.Module):
    """DinoVisionTransformer of the DINOv3 hub in eval mode (RoPE coordinates unperturbed)."""

    def __init__(self, embed_dim=384, depth=12, num_heads=6, ffn_ratio=4.0, ffn='mlp', swiglu_align=8,
                 qkv_bias=True, n_storage_tokens=4, untie_global_and_local_cls_norm=False, patch_size=16):
        super().__init__()
        self.patch_size, self.n_storage = patch_size, n_storage_tokens
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, embed_dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.storage_tokens = nn.Parameter(torch.zeros(1, n_storage_tokens, embed_dim))
        self.rope_embed = NaiveRope(embed_dim // num_heads)
        hidden = int(embed_dim * ffn_ratio) if ffn == 'mlp' else swiglu_hidden(embed_dim, ffn_ratio, swiglu_align)
        self.blocks = nn.ModuleList([NaiveBlock(embed_dim, num_heads, ffn, hidden, 1e-5, qkv_bias, True)
                                     for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-5)
        if untie_global_and_local_cls_norm:
            self.local_cls_norm = nn.LayerNorm(embed_dim, eps=1e-5)
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))

    def get_intermediate_layers(self, x, n=1, reshape=True, norm=True):
        B, _, h, w = x.shape
        x = self.patch_embed.proj(x)
        H, W = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(B, -1, -1), self.storage_tokens.expand(B, -1, -1), x], dim=1)
        angles = self.rope_embed.angles(H, W)
        return read_blocks(self, x, lambda blk, x: blk(x, angles), 1 + self.n_storage, (h, w), n, reshape, norm)


class NaiveDinov2RegViT(nn.Module):
    """DINOv2 DinoVisionTransformer with register tokens, eval mode, at its pre-training grid only."""

    def __init__(self, embed_dim=384, depth=12, num_heads=6, ffn='mlp', patch_size=14, grid=37,
                 num_register_tokens=4):
        super().__init__()
        self.patch_size, self.grid, self.n_reg = patch_size, grid, num_register_tokens
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, embed_dim, patch_size, patch_size)
        hidden = 4 * embed_dim if ffn == 'mlp' else swiglu_hidden(embed_dim, 4, 8)
        self.blocks = nn.ModuleList([NaiveBlock(embed_dim, num_heads, 'mlp' if ffn == 'mlp' else 'swiglu_fused',
                                                hidden, 1e-6, True, False) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def get_intermediate_layers(self, x, n=1, reshape=True, norm=True):
        B, _, h, w = x.shape
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        if x.shape[1] != self.grid * self.grid:
            raise NotImplementedError('the naive reference runs at the pre-training grid only')
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1) + self.pos_embed
        x = torch.cat([x[:, :1], self.register_tokens.expand(B, -1, -1), x[:, 1:]], dim=1)
        return read_blocks(self, x, lambda blk, x: blk(x), 1 + self.n_reg, (h, w), n, reshape, norm)


class NaiveDinov3Adapter(nn.Module):
    """The official DINOv3_Adapter (eval/segmentation/models/backbone/dinov3_adapter.py), BN norms:
    frozen ViT read at interaction_indexes (final-normed), one extractor per read block (two extra
    after the last), no injector, the four read maps added to the four outputs."""

    def __init__(self, backbone, interaction_indexes=(2, 5, 8, 11), conv_inplane=64, n_points=4,
                 deform_num_heads=16, deform_ratio=0.5, cffn_ratio=0.25):
        super().__init__()
        self._spm_tokens = naive.spm_tokens
        self._centres = naive._centres
        self.backbone = backbone
        self.interaction_indexes = list(interaction_indexes)
        dim = backbone.cls_token.shape[-1]
        self.level_embed = nn.Parameter(torch.zeros(3, dim))
        self.spm = naive.NaiveSPM(conv_inplane, dim)
        naive.interactions_and_outputs(self, dim, 4, deform_num_heads, n_points, deform_ratio, cffn_ratio,
                                       injectors=False)
        self._level_maps = naive.level_maps

    def forward(self, img):
        h, w = img.shape[-2:]
        c1, c, n2, n3 = self._spm_tokens(self.spm, self.level_embed, img)
        H, W = h // 16, w // 16
        with torch.no_grad():
            maps = self.backbone.get_intermediate_layers(img, n=self.interaction_indexes, reshape=True, norm=True)
        level_ref = self._centres([(h // 8, w // 8), (h // 16, w // 16), (h // 32, w // 32)])
        vit_shape = torch.tensor([(H, W)])
        for inter, m in zip(self.interactions, maps):
            x = m.flatten(2).transpose(1, 2)
            for ext in [inter.extractor, *(inter.extra_extractors or [])]:
                c = ext(c, x, level_ref, vit_shape, H, W)
        c2, c3, c4 = self._level_maps(c, n2, n3, H, W)
        c1 = self.up(c2) + c1
        outs = [c1, c2, c3, c4]
        outs = [o + F.interpolate(m, size=o.shape[-2:], mode='bilinear', align_corners=False)
                for o, m in zip(outs, maps)]
        return [self.norm1(outs[0]), self.norm2(outs[1]), self.norm3(outs[2]), self.norm4(outs[3])]


class NaiveDinov3ViTAdapter(NaiveDinov3ViT):
    """The trainable ViT-Adapter (injectors, extractors) around a DINOv3 ViT, with this project's rule
    for the class and storage tokens: they run through the blocks, the injectors and extractors see
    only the patch tokens; windowed blocks follow :func:`windowed_attention`. DINOv3 names for the
    ViT, the original ViT-Adapter's for the adapter."""

    def __init__(self, vit_kwargs, windows, interaction_indexes, conv_inplane=8, n_points=2,
                 deform_num_heads=4, deform_ratio=1.0, cffn_ratio=0.25):
        super().__init__(**vit_kwargs)
        self._spm_tokens = naive.spm_tokens
        self._centres = naive._centres
        self.windows, self.idx = windows, interaction_indexes
        dim = self.cls_token.shape[-1]
        self.level_embed = nn.Parameter(torch.zeros(3, dim))
        self.spm = naive.NaiveSPM(conv_inplane, dim)
        naive.interactions_and_outputs(self, dim, len(interaction_indexes), deform_num_heads, n_points,
                                       deform_ratio, cffn_ratio)
        self._level_maps = naive.level_maps

    def forward(self, img):
        B, _, h, w = img.shape
        c1, c, n2, n3 = self._spm_tokens(self.spm, self.level_embed, img)
        dim = c1.shape[1]
        x = self.patch_embed.proj(img)
        H, W = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        prefix = torch.cat([self.cls_token.expand(B, -1, -1), self.storage_tokens.expand(B, -1, -1)], 1)
        P = prefix.shape[1]
        angles = self.rope_embed.angles(H, W)
        level_shapes = torch.tensor([(h // 8, w // 8), (h // 16, w // 16), (h // 32, w // 32)])
        vit_shape = torch.tensor([(H, W)])
        vit_ref, level_ref = self._centres([(H, W)]), self._centres(level_shapes.tolist())
        for inter, (first, last) in zip(self.interactions, self.idx):
            x = inter.injector(x, c, vit_ref, level_shapes)
            tokens = torch.cat([prefix, x], 1)
            for i in range(first, last + 1):
                window = (self.windows[i], H, W, P) if self.windows[i] else None
                tokens = self.blocks[i](tokens, angles, window)
            prefix, x = tokens[:, :P], tokens[:, P:]
            for ext in [inter.extractor, *(inter.extra_extractors or [])]:
                c = ext(c, x, level_ref, vit_shape, H, W)
        c2, c3, c4 = self._level_maps(c, n2, n3, H, W)
        c1 = self.up(c2) + c1
        x3 = x.transpose(1, 2).reshape(B, dim, H, W)
        outs = [c1 + F.interpolate(x3, scale_factor=4, mode='bilinear', align_corners=False),
                c2 + F.interpolate(x3, scale_factor=2, mode='bilinear', align_corners=False),
                c3 + x3, c4 + F.interpolate(x3, scale_factor=0.5, mode='bilinear', align_corners=False)]
        return [self.norm1(outs[0]), self.norm2(outs[1]), self.norm3(outs[2]), self.norm4(outs[3])]
