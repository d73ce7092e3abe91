"""DINOv3Adapter: DINOv3's own adapter mode, a frozen ViT read by ViT-Adapter's extractors.

As the official ``DINOv3_Adapter`` (facebookresearch/dinov3, eval/segmentation/models/backbone/
dinov3_adapter.py) computes it: the ViT is frozen, runs without gradient (in bfloat16 on CUDA, as
the official autocast) and gives the final-normed patch tokens of the blocks in
``interaction_indexes``; nothing is injected into it. The spatial prior module's three levels are
refined by one extractor per taken block (reading that block's tokens; two extra extractors after
the last), and the four taken maps, resized to strides 4, 8, 16 and 32, are added to the four
outputs (the trainable ViTAdapter adds its last tokens to all four instead).

The official module's state dict (``backbone.*`` in DINOv3's names, ``spm.*``, ``interactions.*``,
``up.*``, ``norm1..4.*``, ``level_embed``) loads with ``load_state_dict(strict=True)``: a pre-hook
renames its ViT part as :func:`~mmdet_dinov2.checkpoints.convert.dinov3.convert_dinov3` does and drops
``mask_token`` / ``local_cls_norm`` (pretraining only, no effect on the output).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

from ...checkpoints.convert.dinov3 import convert_dinov3_adapter
from ..layers.adapter import AdapterGeometry, Extractor
from .adapter_base import AdapterBase
from .archs import with_arch

BF16 = 'bfloat16'


class ExtractorBlock(nn.Module):
    """One interaction of the frozen mode: an extractor (plus two extra ones), no injector.

    Args:
        dim (int): channels.
        extra_extractor (bool): two more extractors after the first.
        **extractor_kwargs: :class:`~..layers.adapter.Extractor`'s arguments.
    """

    def __init__(self, dim: int, extra_extractor: bool = False, **extractor_kwargs):
        super().__init__()
        self.extractor = Extractor(dim=dim, **extractor_kwargs)
        self.extra_extractors = nn.ModuleList(
            [Extractor(dim=dim, **extractor_kwargs) for _ in range(2)]) if extra_extractor else None

    def forward(self, c: Tensor, x: Tensor, geometry: AdapterGeometry) -> Tensor:
        """c (B, N_levels, C) adapter tokens read x (B, N_vit, C) ViT tokens -> updated c."""
        c = self.extractor(c, x, geometry)
        for extractor in self.extra_extractors or ():
            c = extractor(c, x, geometry)
        return c


@MODELS.register_module()
@with_arch
class DINOv3Adapter(AdapterBase):
    """DINOv3's frozen-ViT adapter: four maps at strides 4, 8, 16, 32, all embed_dim wide.

    Args:
        embed_dim, depth, num_heads, mlp_ratio, ffn_type, qkv_bias, mask_k_bias, rope_cfg, norm_eps,
            num_register_tokens: the DINOv3 ViT's, see :class:`~.vit.ViT` (defaults: ViT-S/16).
        interaction_indexes (sequence[int]): the ViT blocks read by the four extractors, increasing
            (the official choice: S/B [2, 5, 8, 11], L [4, 11, 17, 23], 7B [9, 19, 29, 39]).
        conv_inplane (int): spatial prior module stem width.
        n_points (int): deformable sampling points per head.
        deform_num_heads (int): deformable attention heads (official: 16).
        drop_path_rate (float): stochastic depth of the extractors' ConvFFN (the ViT has none).
        with_cffn (bool): extractors have a ConvFFN.
        cffn_ratio (float): ConvFFN hidden width over embed_dim.
        deform_ratio (float): deformable attention value width over embed_dim (official: 0.5).
        add_vit_feature (bool): add the four taken ViT maps to the four outputs.
        use_extra_extractor (bool): two extra extractors after the last one.
        with_cp (bool): activation checkpointing of the extractors (official: on).
        vit_dtype (str, optional): 'bfloat16' runs the frozen ViT under CUDA autocast in bfloat16 as
            the official module does (its maps are cast back to the adapter's dtype); None: float32.
            Ignored on the CPU.
        norm_cfg (dict): norm of the spatial prior module and of the four outputs (official: SyncBN).
        out_indices (sequence[int]): which of the four maps (0 = stride 4) to return.
        pretrained (str, optional): weights loaded in :meth:`init_weights`: an official DINOv3 ViT
            file, or an official DINOv3_Adapter state dict.
        init_cfg (dict, optional): mmengine init config; type 'Pretrained' with ``checkpoint`` loads
            like ``pretrained``.
        arch (str, optional): a preset of the keys above (:mod:`.archs`): 'dinov3-s', 'dinov3-l',
            'dinov3-7b'. Keys given beside it win.
    """

    def __init__(self, embed_dim: int = 384, depth: int = 12, num_heads: int = 6, mlp_ratio: float = 4.0,
                 ffn_type: str = 'mlp', qkv_bias: bool = True, mask_k_bias: bool = True,
                 rope_cfg: Optional[dict] = None, norm_eps: float = 1e-5, num_register_tokens: int = 4,
                 interaction_indexes: Sequence[int] = (2, 5, 8, 11), conv_inplane: int = 64, n_points: int = 4,
                 deform_num_heads: int = 16, drop_path_rate: float = 0.3, with_cffn: bool = True,
                 cffn_ratio: float = 0.25, deform_ratio: float = 0.5, add_vit_feature: bool = True,
                 use_extra_extractor: bool = True, with_cp: bool = True, vit_dtype: Optional[str] = BF16,
                 norm_cfg: dict = dict(type='SyncBN'), out_indices: Sequence[int] = (0, 1, 2, 3),
                 pretrained: Optional[str] = None, init_cfg: Optional[dict] = None):
        indexes = list(interaction_indexes)
        if len(indexes) != 4 or any(not isinstance(i, int) or not 0 <= i < depth for i in indexes) \
                or indexes != sorted(set(indexes)):
            raise ValueError(f'interaction_indexes={interaction_indexes!r}: give 4 increasing block indices '
                             f'in 0..{depth - 1}, one per extractor (e.g. [2, 5, 8, 11] for 12 blocks)')
        if vit_dtype not in (None, BF16):
            raise ValueError(f"vit_dtype={vit_dtype!r}: use 'bfloat16' (the official CUDA autocast) or None")

        def interactions() -> nn.ModuleList:
            return nn.ModuleList([
                ExtractorBlock(dim=embed_dim, extra_extractor=use_extra_extractor and i == 3,
                               num_heads=deform_num_heads, num_points=n_points, deform_ratio=deform_ratio,
                               with_cffn=with_cffn, cffn_ratio=cffn_ratio, drop_path=drop_path_rate,
                               with_cp=with_cp)
                for i in range(4)])

        super().__init__(build_interactions=interactions, conv_inplane=conv_inplane, norm_cfg=norm_cfg,
                         out_indices=out_indices, add_vit_feature=add_vit_feature, pretrained=pretrained,
                         init_cfg=init_cfg, patch_size=16, embed_dim=embed_dim, depth=depth,
                         num_heads=num_heads, mlp_ratio=mlp_ratio, ffn_type=ffn_type, pos_embed_type='rope',
                         rope_cfg=rope_cfg, with_cls_token=True, num_register_tokens=num_register_tokens,
                         final_norm=True, norm_eps=norm_eps, qkv_bias=qkv_bias, mask_k_bias=mask_k_bias)
        self.interaction_indexes = indexes
        self.vit_dtype = vit_dtype
        for p in self.vit_parameters():  # the official module freezes its backbone
            p.requires_grad_(False)
        self._register_load_state_dict_pre_hook(self._official_keys_hook)

    @staticmethod
    def _official_keys_hook(state_dict, prefix, *args):
        """Rename an official DINOv3_Adapter state dict's ``backbone.*`` in place."""
        if prefix + 'backbone.patch_embed.proj.weight' not in state_dict:
            return
        mine = {k[len(prefix):]: state_dict.pop(k) for k in [k for k in state_dict if k.startswith(prefix)]}
        converted, _ = convert_dinov3_adapter(mine, drop_unused=True)
        state_dict.update({prefix + k: v for k, v in converted.items()})

    def train(self, mode: bool = True):
        """The frozen ViT stays in eval mode (no RoPE coordinate perturbation, no drop path)."""
        super().train(mode)
        for module in (self.patch_embed, self.blocks, self.rope_embed, self.norm):
            module.eval()
        return self

    def vit_maps(self, img: Tensor) -> Tuple[Tensor, ...]:
        """The final-normed patch-token maps (B, C, h, w) of the interaction_indexes blocks, frozen."""
        use_bf16 = self.vit_dtype == BF16 and img.is_cuda
        with torch.no_grad(), torch.autocast('cuda', dtype=torch.bfloat16, enabled=use_bf16):
            maps = self.get_intermediate_layers(img, n=self.interaction_indexes, norm=True)
        return tuple(m.to(img.dtype) for m in maps)

    def forward(self, img: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H, W), H and W multiples of 32 -> maps (B, embed_dim, H / s, W / s), s = 4, 8, 16, 32."""
        c1, c, level_shapes = self.spatial_prior(img)

        maps = self.vit_maps(img)  # 4 x (B, C, h, w) at stride 16
        geometry = AdapterGeometry.create(tuple(maps[0].shape[-2:]), level_shapes, img.device)
        for block, vit_map in zip(self.interactions, maps):
            c = block(c, vit_map.flatten(2).transpose(1, 2), geometry)

        outs = self.level_outputs(c1, c, level_shapes)  # (B, h, w, C) each
        if self.add_vit_feature:  # map i resized to output i's size
            outs = [out + F.interpolate(vit_map, size=out.shape[1:3], mode='bilinear',
                                        align_corners=False).permute(0, 2, 3, 1)
                    for out, vit_map in zip(outs, maps)]
        return self.normed_outputs(outs)
