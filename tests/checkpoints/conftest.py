"""State dicts in the official DINOv2 layout (random tensors) and a stand-in ViT-Adapter module."""
import pytest
import torch
from torch import nn

GRID = 37  # DINOv2 hub models: img_size 518 / patch 14


def official_dinov2(dim=384, depth=2, *, swiglu=False, registers=0, block_chunks=0, seed=0):
    """A state dict laid out as facebookresearch/dinov2's hub .pth files, with random values.

    Args:
        dim (int): embedding dim D (384/768/1024/1536 for S/B/L/g).
        depth (int): number of blocks (the real files have 12/12/24/40).
        swiglu (bool): ViT-g's fused SwiGLU FFN (mlp.w12, mlp.w3) instead of mlp.fc1/fc2.
        registers (int): number of register tokens (4 for the *_reg4 files).
        block_chunks (int): nest blocks as blocks.<chunk>.<i> (the hub files use 0).
    """
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen)

    sd = {'cls_token': rand(1, 1, dim), 'pos_embed': rand(1, 1 + GRID * GRID, dim),
          'mask_token': rand(1, dim)}
    if registers:
        sd['register_tokens'] = rand(1, registers, dim)
    sd['patch_embed.proj.weight'] = rand(dim, 3, 14, 14)
    sd['patch_embed.proj.bias'] = rand(dim)
    chunk_size = depth // block_chunks if block_chunks else depth
    for i in range(depth):
        prefix = f'blocks.{i // chunk_size}.{i}.' if block_chunks else f'blocks.{i}.'
        sd.update({prefix + 'norm1.weight': rand(dim), prefix + 'norm1.bias': rand(dim),
                   prefix + 'attn.qkv.weight': rand(3 * dim, dim),
                   prefix + 'attn.qkv.bias': rand(3 * dim),
                   prefix + 'attn.proj.weight': rand(dim, dim), prefix + 'attn.proj.bias': rand(dim),
                   prefix + 'ls1.gamma': rand(dim),
                   prefix + 'norm2.weight': rand(dim), prefix + 'norm2.bias': rand(dim)})
        if swiglu:  # SwiGLUFFNFused: hidden = (int(4 * dim * 2 / 3) + 7) // 8 * 8
            hidden = (int(4 * dim * 2 / 3) + 7) // 8 * 8
            sd.update({prefix + 'mlp.w12.weight': rand(2 * hidden, dim),
                       prefix + 'mlp.w12.bias': rand(2 * hidden),
                       prefix + 'mlp.w3.weight': rand(dim, hidden), prefix + 'mlp.w3.bias': rand(dim)})
        else:
            sd.update({prefix + 'mlp.fc1.weight': rand(4 * dim, dim),
                       prefix + 'mlp.fc1.bias': rand(4 * dim),
                       prefix + 'mlp.fc2.weight': rand(dim, 4 * dim),
                       prefix + 'mlp.fc2.bias': rand(dim)})
        sd[prefix + 'ls2.gamma'] = rand(dim)
    sd['norm.weight'] = rand(dim)
    sd['norm.bias'] = rand(dim)
    return sd


class _Attention(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)


class _Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)


class _Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim)
        self.gamma1 = nn.Parameter(torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, 4 * dim)
        self.gamma2 = nn.Parameter(torch.ones(dim))


class StandInViTAdapter(nn.Module):
    """Parameters named as the ViTAdapter's (ViT part + a few adapter parts), no forward."""

    def __init__(self, dim=384, depth=2, patch_size=16):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch_size, patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + GRID * GRID, dim))
        self.blocks = nn.ModuleList(_Block(dim) for _ in range(depth))
        self.level_embed = nn.Parameter(torch.zeros(3, dim))
        self.spm = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
        self.up = nn.ConvTranspose2d(dim, dim, 2, 2)
        self.norm1 = nn.BatchNorm2d(dim)


@pytest.fixture(scope='session')
def make_dinov2():
    """The :func:`official_dinov2` builder (test modules cannot import conftest by name)."""
    return official_dinov2


@pytest.fixture(scope='session')
def make_stand_in():
    return StandInViTAdapter


@pytest.fixture(scope='session')
def vits_state_dict():
    """A DINOv2 ViT-S state dict with 2 blocks; treat it as read-only."""
    return official_dinov2(384, depth=2)
