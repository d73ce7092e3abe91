"""AdapterBase: what ViTAdapter and DINOv3Adapter share around their ViT.

Both are a :class:`~.vit.ViT` (its parameters keep their names, so ViT files load unchanged) plus
ViT-Adapter's parts (Chen et al. 2023): the spatial prior module ``spm`` and ``level_embed`` giving the
adapter's tokens at strides 8, 16, 32, the ``interactions`` that refine them from the ViT's tokens, the
2x2 transposed conv ``up`` that adds c2 to c1 at stride 4, and the four output norms ``norm1..4``,
registered in this order as in the original's state dict. A subclass builds the interactions and
decides what they read; the spatial prior, the four maps, their norms, the initialization and the
loading of pretrained weights are here.
"""
import math
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmengine.logging import MMLogger
from timm.layers import trunc_normal_
from torch import Tensor, nn

from ...checkpoints import load_backbone_weights
from ..layers.adapter import SpatialPriorModule
from ..layers.linear import onednn_linear
from ..layers.ms_deform_attn import MSDeformAttn
from .vit import ViT

# c4, the coarsest level of the spatial prior module, is at stride 32
INPUT_DIVISOR = 32


def _init_like_original(m: nn.Module):
    """The original's ``_init_weights`` for the adapter: truncated-normal linears, fan-out normal convs."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def upsample_2x2(x: Tensor, up: nn.ConvTranspose2d) -> Tensor:
    """``up`` (kernel 2, stride 2: each input pixel gives its own 2x2 output pixels) on channels-last
    (B, h, w, C_in) as the matmul it is -> (B, 2h, 2w, C_out); torch's CPU transposed conv is ~5x slower."""
    B, h, w, _ = x.shape
    weight = up.weight.permute(2, 3, 1, 0).flatten(0, 2)  # (2 * 2 * C_out, C_in), rows (dy, dx, out)
    y = onednn_linear(x, weight, up.bias.repeat(4)).view(B, h, w, 2, 2, -1)
    return y.transpose(2, 3).reshape(B, 2 * h, 2 * w, -1)


def checkpoint_to_load(pretrained: Optional[str], init_cfg: Optional[dict]) -> Optional[str]:
    """The file a backbone loads itself: ``pretrained``, or init_cfg's of type 'Pretrained'."""
    if pretrained is not None:
        return pretrained
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        if 'checkpoint' not in init_cfg:
            raise ValueError(f"init_cfg={init_cfg!r} of type 'Pretrained' needs a 'checkpoint' path")
        if 'trust' in init_cfg:
            raise ValueError(
                f"init_cfg={init_cfg!r}: 'trust' is not read here; trust is one switch for the "
                'whole run: trust_checkpoint = True in the config (or --trust-checkpoint)')
        return init_cfg['checkpoint']
    return None


class AdapterBase(ViT):
    """A ViT with ViT-Adapter's spatial prior, interactions, up-sampling and output norms.

    Args:
        build_interactions (callable): () -> nn.ModuleList, the subclass's interactions; called after
            ``spm`` is built and before ``up``, so that the state dict keeps the original's order.
        conv_inplane (int): spatial prior module stem width.
        norm_cfg (dict): norm of the spatial prior module and of the four outputs.
        out_indices (sequence[int]): which of the four maps (0 = stride 4) to return.
        add_vit_feature (bool): add ViT maps to the four outputs (the subclass's forward does).
        pretrained (str, optional): weights to load in :meth:`init_weights`.
        init_cfg (dict, optional): mmengine init config; type 'Pretrained' with ``checkpoint`` loads
            like ``pretrained``.
        **vit_kwargs: :class:`~.vit.ViT`'s arguments.
    """

    def __init__(self, build_interactions: Callable[[], nn.ModuleList], conv_inplane: int, norm_cfg: dict,
                 out_indices: Sequence[int], add_vit_feature: bool, pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None, **vit_kwargs):
        if pretrained is not None and init_cfg is not None:
            raise ValueError(f'give either pretrained={pretrained!r} or init_cfg={init_cfg!r}, not both')
        super().__init__(init_cfg=init_cfg, **vit_kwargs)
        embed_dim = self.embed_dim
        self.out_indices = tuple(out_indices)
        self.add_vit_feature = add_vit_feature
        self.pretrained = pretrained

        self.level_embed = nn.Parameter(torch.zeros(3, embed_dim))
        self.spm = SpatialPriorModule(inplanes=conv_inplane, embed_dim=embed_dim, norm_cfg=norm_cfg)
        self.interactions = build_interactions()
        self.up = nn.ConvTranspose2d(embed_dim, embed_dim, kernel_size=2, stride=2)
        for i in range(1, 5):
            self.add_module(f'norm{i}', build_norm_layer(norm_cfg, embed_dim)[1])
        self.init_adapter()

    # ---------------------------------------------------------------- initialization
    @torch.no_grad()
    def init_adapter(self):
        """The original's random init of ``up``, ``spm``, ``interactions``, their deformable attentions
        and ``level_embed`` (the ViT keeps PyTorch's defaults, as there)."""
        for module in (self.up, self.spm, self.interactions):
            module.apply(_init_like_original)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m.reset_parameters()
        nn.init.normal_(self.level_embed)

    def load_pretrained(self) -> bool:
        """Load ``pretrained`` / init_cfg 'Pretrained' through the project's safe, reporting loader
        (trusted only inside a run whose config says ``trust_checkpoint = True``).

        Returns:
            bool: False when the backbone names no checkpoint (its other init_cfg is mmengine's).
        """
        path = checkpoint_to_load(self.pretrained, self.init_cfg)
        if path is None:
            return False
        load_backbone_weights(self, path, logger=MMLogger.get_current_instance())
        self._is_init = True
        return True

    def init_weights(self):
        """The pretrained file through :meth:`load_pretrained`, else mmengine's init_cfg."""
        if not self.load_pretrained():
            super().init_weights()

    # ---------------------------------------------------------------- forward parts
    def spatial_prior(self, img: Tensor) -> Tuple[Tensor, Tensor, List[Tuple[int, int]]]:
        """Check the input's size and run ``spm``: c1 (B, H / 4, W / 4, C), c2..c4 flattened into one
        token sequence with ``level_embed`` added (B, N2 + N3 + N4, C), and the (h, w) of c2..c4."""
        H, W = img.shape[-2:]
        if H % INPUT_DIVISOR or W % INPUT_DIVISOR:
            raise ValueError(f'{type(self).__name__}: input of {H}x{W} pixels; both sides must be multiples '
                             f'of {INPUT_DIVISOR} (pad the batch, e.g. pad_size_divisor=32)')
        c1, levels = self.spm(img)  # (B, H / 4, W / 4, C), [(B, h, w, C)] * 3
        level_shapes = [tuple(lvl.shape[1:3]) for lvl in levels]
        c = torch.cat([lvl.flatten(1, 2) + e for lvl, e in zip(levels, self.level_embed)], 1)
        return c1, c, level_shapes

    def level_outputs(self, c1: Tensor, c: Tensor, level_shapes: Sequence[Tuple[int, int]]) -> List[Tensor]:
        """The adapter's four (B, h, w, C) maps at strides 4..32: the token sequence c split back into
        c2..c4, and c1 plus c2 upsampled by ``up``."""
        levels = c.split([h * w for h, w in level_shapes], 1)
        c2, c3, c4 = [lvl.unflatten(1, hw) for lvl, hw in zip(levels, level_shapes)]
        return [c1 + upsample_2x2(c2, self.up), c2, c3, c4]

    def normed_outputs(self, outs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """``norm1..4`` of the (B, h, w, C) maps chosen by ``out_indices``, as (B, C, h, w).

        In standard (B, C, h, w) memory: mmcv's CPU RoIAlign reads channels-last maps as if they were
        not (wrong features, no error), and a split view's batch stride trips torch 2.14's CPU
        BatchNorm backward."""
        norms = (self.norm1, self.norm2, self.norm3, self.norm4)
        return tuple(norms[i](outs[i].permute(0, 3, 1, 2).contiguous()) for i in self.out_indices)
