"""A stand-in for the ViTAdapter: its parameter names (the ViT part and a few adapter parts), no
forward, for the loading tests."""
import torch
from torch import nn

from tests.fake_checkpoints import DINOV2_GRID as GRID


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
