"""A naive re-implementation of the original ViT-Adapter forward, for tests only.

Written for obviousness, not speed, and independently of ``mmdet_dinov2``: explicit softmax
attention, windows cut with F.pad + unfold/fold on the projected q/k/v (as the original does),
the depth-wise conv locating its levels by the original's N // 21 trick (square-ish inputs whose
sides are multiples of 32), deformable attention through mmcv's pure-PyTorch grid_sample function,
plain BatchNorm2d. Parameter names follow the original, so a state dict of
``mmdet_dinov2.models.backbones.ViTAdapter`` loads with strict=True.
"""
import math

import torch
import torch.nn.functional as F
from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
from torch import nn


def naive_attention(q, k, v):
    """softmax(q k^T / sqrt(d)) v over the last two dims."""
    logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    logits = logits - logits.max(-1, keepdim=True).values
    p = logits.exp()
    return (p / p.sum(-1, keepdim=True)) @ v


class NaiveAttention(nn.Module):
    def __init__(self, dim, heads, window):
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, H, W):
        B, N, C = x.shape
        hd = C // self.heads
        qkv = self.qkv(x)
        if not self.window:
            qkv = qkv.reshape(B, N, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
            out = naive_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(B, N, C)
            return self.proj(out)
        ws = self.window
        Hp, Wp = math.ceil(H / ws) * ws, math.ceil(W / ws) * ws
        grid = qkv.transpose(1, 2).reshape(B, 3 * C, H, W)
        grid = F.pad(grid, [0, Wp - W, 0, Hp - H])  # zeros in the projected q, k and v
        cols = F.unfold(grid, kernel_size=ws, stride=ws)  # (B, 3C * ws * ws, L)
        L = cols.shape[-1]
        cols = cols.reshape(B, 3 * C, ws * ws, L).permute(0, 3, 2, 1)  # (B, L, n, 3C)
        cols = cols.reshape(B, L, ws * ws, 3, self.heads, hd).permute(3, 0, 1, 4, 2, 5)
        out = naive_attention(cols[0], cols[1], cols[2])  # (B, L, heads, n, hd)
        out = out.permute(0, 2, 4, 3, 1).reshape(B, C * ws * ws, L)
        out = F.fold(out, output_size=(Hp, Wp), kernel_size=ws, stride=ws)[:, :, :H, :W]
        return self.proj(out.reshape(B, C, N).transpose(1, 2))


class NaiveBlock(nn.Module):
    def __init__(self, dim, heads, hidden, swiglu, window):
        super().__init__()
        self.swiglu = swiglu
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = NaiveAttention(dim, heads, window)
        self.gamma1 = nn.Parameter(torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, 2 * hidden if swiglu else hidden)
        self.mlp.fc2 = nn.Linear(hidden, dim)
        self.gamma2 = nn.Parameter(torch.ones(dim))

    def ffn(self, x):
        h = self.mlp.fc1(x)
        if self.swiglu:
            a, b = h.chunk(2, dim=-1)
            h = a * torch.sigmoid(a) * b
        else:
            h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
        return self.mlp.fc2(h)

    def forward(self, x, H, W):
        x = x + self.gamma1 * self.attn(self.norm1(x), H, W)
        return x + self.gamma2 * self.ffn(self.norm2(x))


class NaiveMSDeformAttn(nn.Module):
    def __init__(self, dim, heads, levels, points, ratio):
        super().__init__()
        self.heads, self.levels, self.points = heads, levels, points
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 2)
        self.attention_weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, int(dim * ratio))
        self.output_proj = nn.Linear(int(dim * ratio), dim)

    def forward(self, query, ref, feat, shapes):
        B, Q, _ = query.shape
        M, L, P = self.heads, self.levels, self.points
        value = self.value_proj(feat).reshape(B, feat.shape[1], M, -1)
        off = self.sampling_offsets(query).reshape(B, Q, M, L, P, 2)
        w = self.attention_weights(query).reshape(B, Q, M, L * P).softmax(-1).reshape(B, Q, M, L, P)
        loc = torch.empty_like(off)
        for lvl in range(L):
            H, W = shapes[lvl].tolist()
            loc[:, :, :, lvl, :, 0] = ref[:, :, None, 0, None, 0] + off[:, :, :, lvl, :, 0] / W
            loc[:, :, :, lvl, :, 1] = ref[:, :, None, 0, None, 1] + off[:, :, :, lvl, :, 1] / H
        return self.output_proj(multi_scale_deformable_attn_pytorch(value, shapes, loc, w))


class NaiveDWConv(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x, H, W):
        B, N, C = x.shape
        n = N // 21  # stride-8 level: 16n tokens, stride 16: 4n, stride 32: n
        parts = [(x[:, :16 * n], 2 * H, 2 * W), (x[:, 16 * n:20 * n], H, W), (x[:, 20 * n:], H // 2, W // 2)]
        return torch.cat([self.dwconv(p.transpose(1, 2).reshape(B, C, h, w)).flatten(2).transpose(1, 2)
                          for p, h, w in parts], 1)


class NaiveConvFFN(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = NaiveDWConv(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x, H, W):
        return self.fc2(F.gelu(self.dwconv(self.fc1(x), H, W)))


class NaiveInjector(nn.Module):
    def __init__(self, dim, heads, points, ratio):
        super().__init__()
        self.query_norm = nn.LayerNorm(dim, eps=1e-6)
        self.feat_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attn = NaiveMSDeformAttn(dim, heads, 3, points, ratio)
        self.gamma = nn.Parameter(torch.zeros(dim))

    def forward(self, x, c, ref, shapes):
        return x + self.gamma * self.attn(self.query_norm(x), ref, self.feat_norm(c), shapes)


class NaiveExtractor(nn.Module):
    def __init__(self, dim, heads, points, ratio, cffn_ratio):
        super().__init__()
        self.query_norm = nn.LayerNorm(dim, eps=1e-6)
        self.feat_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attn = NaiveMSDeformAttn(dim, heads, 1, points, ratio)
        self.ffn = NaiveConvFFN(dim, int(dim * cffn_ratio))
        self.ffn_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, c, x, ref, shapes, H, W):
        c = c + self.attn(self.query_norm(c), ref, self.feat_norm(x), shapes)
        return c + self.ffn(self.ffn_norm(c), H, W)


def _stage(cin, cout, stride):
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class NaiveSPM(nn.Module):
    def __init__(self, inplanes, dim):
        super().__init__()
        self.stem = nn.Sequential(*_stage(3, inplanes, 2), *_stage(inplanes, inplanes, 1),
                                  *_stage(inplanes, inplanes, 1), nn.MaxPool2d(3, 2, 1))
        self.conv2 = nn.Sequential(*_stage(inplanes, 2 * inplanes, 2))
        self.conv3 = nn.Sequential(*_stage(2 * inplanes, 4 * inplanes, 2))
        self.conv4 = nn.Sequential(*_stage(4 * inplanes, 4 * inplanes, 2))
        self.fc1 = nn.Conv2d(inplanes, dim, 1)
        self.fc2 = nn.Conv2d(2 * inplanes, dim, 1)
        self.fc3 = nn.Conv2d(4 * inplanes, dim, 1)
        self.fc4 = nn.Conv2d(4 * inplanes, dim, 1)


def _centres(shapes):
    """(1, sum H*W, 1, 2) cell centres, (x, y) in 0..1, one Python loop per cell."""
    pts = [[(j + 0.5) / W, (i + 0.5) / H] for H, W in shapes for i in range(H) for j in range(W)]
    return torch.tensor(pts, dtype=torch.float32)[None, :, None]


def spm_tokens(spm, level_embed, img):
    """The spatial prior module's maps: c1 (B, C, H/4, W/4), and c2..c4 as one token sequence
    (B, N2 + N3 + N4, C) with the level embeddings added, plus N2 and N3."""
    c1 = spm.stem(img)
    c2 = spm.conv2(c1)
    c3 = spm.conv3(c2)
    c4 = spm.conv4(c3)
    c1, c2, c3, c4 = spm.fc1(c1), spm.fc2(c2), spm.fc3(c3), spm.fc4(c4)
    seq = [c.flatten(2).transpose(1, 2) + level_embed[i] for i, c in enumerate((c2, c3, c4))]
    return c1, torch.cat(seq, 1), seq[0].shape[1], seq[1].shape[1]


def interactions_and_outputs(module, dim, n, deform_num_heads, n_points, deform_ratio, cffn_ratio,
                             injectors=True):
    """Give MODULE the adapter's parts after the spatial prior module, with the original's names:
    ``interactions`` (an injector unless ``injectors`` is False, an extractor, and two extra
    extractors in the last), ``up`` and ``norm1``..``norm4`` (BN)."""
    args = (dim, deform_num_heads, n_points, deform_ratio)
    module.interactions = nn.ModuleList()
    for i in range(n):
        inter = nn.Module()
        if injectors:
            inter.injector = NaiveInjector(*args)
        inter.extractor = NaiveExtractor(*args, cffn_ratio)
        inter.extra_extractors = (nn.ModuleList([NaiveExtractor(*args, cffn_ratio) for _ in range(2)])
                                  if i == n - 1 else None)
        module.interactions.append(inter)
    module.up = nn.ConvTranspose2d(dim, dim, 2, 2)
    for i in range(1, 5):
        module.add_module(f'norm{i}', nn.BatchNorm2d(dim))


def level_maps(c, n2, n3, H, W):
    """The adapter's token sequence back as maps: c2 (B, C, 2H, 2W), c3 (B, C, H, W), c4 (B, C, H/2, W/2)."""
    B, _, dim = c.shape
    return (c[:, :n2].transpose(1, 2).reshape(B, dim, 2 * H, 2 * W).contiguous(),
            c[:, n2:n2 + n3].transpose(1, 2).reshape(B, dim, H, W).contiguous(),
            c[:, n2 + n3:].transpose(1, 2).reshape(B, dim, H // 2, W // 2).contiguous())


class NaiveViTAdapter(nn.Module):
    """The original ViTAdapter's forward with the original's parameter names (BN norms)."""

    def __init__(self, embed_dim=384, depth=12, num_heads=6, mlp_hidden=1536, swiglu=False, pos_grid=37,
                 conv_inplane=64, n_points=4, deform_num_heads=6, deform_ratio=1.0, cffn_ratio=0.25,
                 interaction_indexes=((0, 2), (3, 5), (6, 8), (9, 11)), windows=None):
        super().__init__()
        windows = windows or [None] * depth
        self.pos_grid, self.idx = pos_grid, interaction_indexes
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, embed_dim, 16, 16)
        self.pos_embed = nn.Parameter(torch.zeros(1, pos_grid * pos_grid + 1, embed_dim))
        self.blocks = nn.ModuleList([NaiveBlock(embed_dim, num_heads, mlp_hidden, swiglu, windows[i])
                                     for i in range(depth)])
        self.level_embed = nn.Parameter(torch.zeros(3, embed_dim))
        self.spm = NaiveSPM(conv_inplane, embed_dim)
        interactions_and_outputs(self, embed_dim, len(interaction_indexes), deform_num_heads, n_points,
                                 deform_ratio, cffn_ratio)

    def forward(self, img):
        B, _, h, w = img.shape
        c1, c, n2, n3 = spm_tokens(self.spm, self.level_embed, img)
        dim = c1.shape[1]

        x = self.patch_embed.proj(img)
        H, W = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        g = self.pos_grid
        pos = self.pos_embed[:, 1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=(H, W), mode='bicubic', align_corners=False)
        x = x + pos.reshape(1, dim, H * W).transpose(1, 2)

        level_shapes = torch.tensor([(h // 8, w // 8), (h // 16, w // 16), (h // 32, w // 32)])
        vit_shape = torch.tensor([(h // 16, w // 16)])
        vit_ref = _centres(vit_shape.tolist())
        level_ref = _centres(level_shapes.tolist())
        for inter, (first, last) in zip(self.interactions, self.idx):
            x = inter.injector(x, c, vit_ref, level_shapes)
            for blk in self.blocks[first:last + 1]:
                x = blk(x, H, W)
            for ext in [inter.extractor, *(inter.extra_extractors or [])]:
                c = ext(c, x, level_ref, vit_shape, H, W)

        c2, c3, c4 = level_maps(c, n2, n3, H, W)
        c1 = self.up(c2) + c1
        x3 = x.transpose(1, 2).reshape(B, dim, H, W)
        c1 = c1 + F.interpolate(x3, scale_factor=4, mode='bilinear', align_corners=False)
        c2 = c2 + F.interpolate(x3, scale_factor=2, mode='bilinear', align_corners=False)
        c3 = c3 + x3
        c4 = c4 + F.interpolate(x3, scale_factor=0.5, mode='bilinear', align_corners=False)
        return [self.norm1(c1), self.norm2(c2), self.norm3(c3), self.norm4(c4)]
