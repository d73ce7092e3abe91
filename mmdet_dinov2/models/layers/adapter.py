"""ViT-Adapter's modules (Chen et al., Vision Transformer Adapter for Dense Predictions, ICLR 2023).

The spatial prior module (a small conv stem) gives features at strides 8/16/32; injectors write them
into the ViT tokens (stride 16) with deformable cross-attention, extractors read the ViT tokens back
into them. Token sequences are (B, N, C); the adapter's three levels are concatenated along N in the
order stride 8, 16, 32, and their (H, W) are passed explicitly as ``shapes``.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
from timm.layers import DropPath
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .linear import OneDNNLinear, act_linear, onednn_linear
from .ms_deform_attn import MSDeformAttn

Shape = Tuple[int, int]


def maybe_checkpoint(fn, *args, with_cp: bool):
    """fn(*args); with_cp recomputes it in the backward pass (when the first input needs a gradient)."""
    if with_cp and args[0].requires_grad:
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def reference_points(shapes: Sequence[Shape], device=None) -> Tensor:
    """Centres of the cells of each grid as (x, y) in 0..1, concatenated: (1, sum H*W, 1, 2)."""
    points = []
    for H, W in shapes:
        y = torch.linspace(0.5, H - 0.5, H, dtype=torch.float32, device=device) / H
        x = torch.linspace(0.5, W - 0.5, W, dtype=torch.float32, device=device) / W
        points.append(torch.stack(torch.meshgrid(x, y, indexing='xy'), -1).reshape(-1, 2))
    return torch.cat(points)[None, :, None]


class AdapterGeometry(NamedTuple):
    """Where the tokens lie, for one input size.

    vit_shape: (H, W) of the ViT tokens (stride 16). level_shapes: (H, W) of the adapter's levels at
    strides 8, 16, 32. vit_points / level_points: their reference points, see :func:`reference_points`.
    """
    vit_shape: Shape
    level_shapes: List[Shape]
    vit_points: Tensor
    level_points: Tensor

    @classmethod
    def create(cls, vit_shape: Shape, level_shapes: Sequence[Shape], device=None) -> 'AdapterGeometry':
        return cls(vit_shape=tuple(vit_shape), level_shapes=[tuple(s) for s in level_shapes],
                   vit_points=reference_points([vit_shape], device),
                   level_points=reference_points(level_shapes, device))


def _conv_norm_relu(in_channels: int, out_channels: int, stride: int, norm_cfg: dict) -> List[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
            build_norm_layer(norm_cfg, out_channels)[1], nn.ReLU(inplace=True)]


class SpatialPriorModule(nn.Module):
    """A ResNet-like stem giving c1..c4 at strides 4, 8, 16, 32, each projected to embed_dim (fc1..4).

    Args:
        inplanes (int): stem width; the later stages use 2x and 4x of it.
        embed_dim (int): channels of the outputs.
        norm_cfg (dict): mmcv norm config of the stem's norms.
    """

    def __init__(self, inplanes: int = 64, embed_dim: int = 384, norm_cfg: dict = dict(type='SyncBN')):
        super().__init__()
        self.stem = nn.Sequential(*_conv_norm_relu(3, inplanes, stride=2, norm_cfg=norm_cfg),
                                  *_conv_norm_relu(inplanes, inplanes, stride=1, norm_cfg=norm_cfg),
                                  *_conv_norm_relu(inplanes, inplanes, stride=1, norm_cfg=norm_cfg),
                                  nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        self.conv2 = nn.Sequential(*_conv_norm_relu(inplanes, 2 * inplanes, stride=2, norm_cfg=norm_cfg))
        self.conv3 = nn.Sequential(*_conv_norm_relu(2 * inplanes, 4 * inplanes, stride=2, norm_cfg=norm_cfg))
        self.conv4 = nn.Sequential(*_conv_norm_relu(4 * inplanes, 4 * inplanes, stride=2, norm_cfg=norm_cfg))
        self.fc1 = nn.Conv2d(inplanes, embed_dim, 1)
        self.fc2 = nn.Conv2d(2 * inplanes, embed_dim, 1)
        self.fc3 = nn.Conv2d(4 * inplanes, embed_dim, 1)
        self.fc4 = nn.Conv2d(4 * inplanes, embed_dim, 1)

    def forward(self, img: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """(B, 3, H, W) -> c1, c2, c3, c4 as (B, H / s, W / s, embed_dim) for s = 4, 8, 16, 32 (the
        token layout the interactions read).

        The convs run in channels-last memory (faster on CPUs), the 1x1 projections as the matmuls
        over channels they are (torch's CPU 1x1 conv takes a slow im2col path).
        """
        c1 = self.stem(img.contiguous(memory_format=torch.channels_last))
        c2 = self.conv2(c1)
        c3 = self.conv3(c2)
        c4 = self.conv4(c3)
        c1, c2, c3, c4 = [onednn_linear(c.permute(0, 2, 3, 1), fc.weight.flatten(1), fc.bias)  # (B, h, w, C)
                          for c, fc in zip((c1, c2, c3, c4), (self.fc1, self.fc2, self.fc3, self.fc4))]
        return c1, [c2, c3, c4]


class ConvFFN(nn.Module):
    """FFN with a 3x3 depth-wise conv over each level's grid between its two linear layers.

    Args:
        dim (int): input and output channels.
        hidden_dim (int): hidden channels.
    """

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = OneDNNLinear(dim, hidden_dim)
        self.dwconv = DWConv(hidden_dim)
        self.act = nn.GELU()
        self.fc2 = OneDNNLinear(hidden_dim, dim)

    def forward(self, x: Tensor, shapes: Sequence[Shape]) -> Tensor:
        """x (B, N, C), the levels of ``shapes`` concatenated -> (B, N, C)."""
        # GELU's output is recomputed from its input for the backward pass
        return act_linear(self.dwconv(self.fc1(x), shapes), self.act, self.fc2.weight, self.fc2.bias)


class DWConv(nn.Module):
    """3x3 depth-wise conv applied to each level of a concatenated token sequence separately.

    Args:
        dim (int): channels.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim)

    def forward(self, x: Tensor, shapes: Sequence[Shape]) -> Tensor:
        """x (B, N, C) with N = sum H * W over ``shapes`` -> (B, N, C)."""
        B, _, C = x.shape
        levels = x.split([h * w for h, w in shapes], dim=1)
        out = []
        for level, (h, w) in zip(levels, shapes):
            level = level.reshape(B, h, w, C).permute(0, 3, 1, 2)  # (B, C, h, w), channels-last memory
            out.append(self.dwconv(level).permute(0, 2, 3, 1).reshape(B, h * w, C))
        return torch.cat(out, dim=1)


class Injector(nn.Module):
    """Spatial feature injector: ViT tokens attend to the adapter's three levels (query = ViT).

    Args:
        dim (int): channels.
        num_heads (int): deformable attention heads.
        num_points (int): sampling points per head and level.
        num_levels (int): adapter levels attended to.
        deform_ratio (float): value width of the deformable attention over dim.
        init_values (float): initial value of the learnable output scale ``gamma``.
        with_cp (bool): activation checkpointing.
    """

    def __init__(self, dim: int, num_heads: int = 6, num_points: int = 4, num_levels: int = 3,
                 deform_ratio: float = 1.0, init_values: float = 0.0, with_cp: bool = False):
        super().__init__()
        self.with_cp = with_cp
        self.query_norm = nn.LayerNorm(dim, eps=1e-6)
        self.feat_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MSDeformAttn(dim=dim, num_heads=num_heads, num_levels=num_levels, num_points=num_points,
                                 deform_ratio=deform_ratio)
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def _forward(self, x: Tensor, c: Tensor, geometry: AdapterGeometry) -> Tensor:
        attn = self.attn(query=self.query_norm(x), reference_points=geometry.vit_points,
                         feat=self.feat_norm(c), spatial_shapes=geometry.level_shapes)
        return x + self.gamma * attn

    def forward(self, x: Tensor, c: Tensor, geometry: AdapterGeometry) -> Tensor:
        """x (B, N_vit, C) ViT tokens, c (B, N_levels, C) adapter tokens -> updated x."""
        return maybe_checkpoint(self._forward, x, c, geometry, with_cp=self.with_cp)


class Extractor(nn.Module):
    """Multi-scale feature extractor: adapter tokens attend to the ViT tokens, then a ConvFFN.

    Args:
        dim (int): channels.
        num_heads (int): deformable attention heads.
        num_points (int): sampling points per head.
        deform_ratio (float): value width of the deformable attention over dim.
        with_cffn (bool): add the ConvFFN branch.
        cffn_ratio (float): ConvFFN hidden width over dim.
        drop_path (float): stochastic depth of the ConvFFN branch.
        with_cp (bool): activation checkpointing.
    """

    def __init__(self, dim: int, num_heads: int = 6, num_points: int = 4, deform_ratio: float = 1.0,
                 with_cffn: bool = True, cffn_ratio: float = 0.25, drop_path: float = 0.0,
                 with_cp: bool = False):
        super().__init__()
        self.with_cp = with_cp
        self.query_norm = nn.LayerNorm(dim, eps=1e-6)
        self.feat_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MSDeformAttn(dim=dim, num_heads=num_heads, num_levels=1, num_points=num_points,
                                 deform_ratio=deform_ratio)
        if with_cffn:
            self.ffn = ConvFFN(dim, int(dim * cffn_ratio))
            self.ffn_norm = nn.LayerNorm(dim, eps=1e-6)
            self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        else:
            self.ffn = None

    def _forward(self, c: Tensor, x: Tensor, geometry: AdapterGeometry) -> Tensor:
        c = c + self.attn(query=self.query_norm(c), reference_points=geometry.level_points,
                          feat=self.feat_norm(x), spatial_shapes=[geometry.vit_shape])
        if self.ffn is not None:
            c = c + self.drop_path(self.ffn(self.ffn_norm(c), geometry.level_shapes))
        return c

    def forward(self, c: Tensor, x: Tensor, geometry: AdapterGeometry) -> Tensor:
        """c (B, N_levels, C) adapter tokens, x (B, N_vit, C) ViT tokens -> updated c."""
        return maybe_checkpoint(self._forward, c, x, geometry, with_cp=self.with_cp)


class InteractionBlock(nn.Module):
    """Injector, a group of ViT blocks, extractor (and optionally two extra extractors).

    Args:
        dim (int): channels.
        num_heads (int): deformable attention heads.
        num_points (int): sampling points per head and level.
        init_values (float): initial injector scale.
        drop_path (float): stochastic depth of the extractors' ConvFFN.
        with_cffn (bool): extractors have a ConvFFN.
        cffn_ratio (float): ConvFFN hidden width over dim.
        deform_ratio (float): value width of the deformable attention over dim.
        extra_extractor (bool): two more extractors after the first (the last interaction's).
        with_cp (bool): activation checkpointing of injector and extractors.
    """

    def __init__(self, dim: int, num_heads: int = 6, num_points: int = 4, init_values: float = 0.0,
                 drop_path: float = 0.0, with_cffn: bool = True, cffn_ratio: float = 0.25,
                 deform_ratio: float = 1.0, extra_extractor: bool = False, with_cp: bool = False):
        super().__init__()
        self.injector = Injector(dim=dim, num_heads=num_heads, num_points=num_points, num_levels=3,
                                 deform_ratio=deform_ratio, init_values=init_values, with_cp=with_cp)

        def extractor():
            return Extractor(dim=dim, num_heads=num_heads, num_points=num_points, deform_ratio=deform_ratio,
                             with_cffn=with_cffn, cffn_ratio=cffn_ratio, drop_path=drop_path,
                             with_cp=with_cp)

        self.extractor = extractor()
        self.extra_extractors = nn.ModuleList([extractor(), extractor()]) if extra_extractor else None

    def forward(self, x: Tensor, c: Tensor, blocks: Sequence[nn.Module], geometry: AdapterGeometry,
                rope: Optional[nn.Module] = None, num_prefix: int = 0) -> Tuple[Tensor, Tensor]:
        """x (B, P + N_vit, C) ViT tokens (num_prefix = P class / register tokens first, which the
        injector and extractors neither write nor read), c (B, N_levels, C) adapter tokens -> both
        updated; rope: the ViT's RoPE module, passed to the blocks."""
        if not num_prefix and rope is None:  # DINOv2 as the original ViT-Adapter runs it
            x = self.injector(x, c, geometry)
            for block in blocks:
                x = block(x, geometry.vit_shape)
            patches = x
        else:
            x = torch.cat([x[:, :num_prefix], self.injector(x[:, num_prefix:], c, geometry)], 1)
            for block in blocks:
                x = block(x, geometry.vit_shape, rope, num_prefix)
            patches = x[:, num_prefix:]
        c = self.extractor(c, patches, geometry)
        for extractor in self.extra_extractors or ():
            c = extractor(c, patches, geometry)
        return x, c
