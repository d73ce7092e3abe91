"""ViTAdapter: a DINOv2 / DINOv3 ViT plus ViT-Adapter's spatial prior and interactions, as an mmdet backbone.

Chen et al., Vision Transformer Adapter for Dense Predictions (ICLR 2023). Same constructor
arguments and parameter names as the original (czczup/ViT-Adapter, detection/), so its configs'
backbone dicts and its checkpoints work unchanged.
"""
from typing import Optional, Sequence, Tuple, Union

import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

from ..layers.adapter import AdapterGeometry, InteractionBlock
from .adapter_base import AdapterBase
from .archs import with_arch
from .arguments import check_adapter_arguments, positive_int
from .vit import _per_block

# The adapter reads the ViT tokens as its stride-16 level.
VIT_STRIDE = 16


@MODELS.register_module()
@with_arch
class ViTAdapter(AdapterBase):
    """ViT-Adapter backbone: four feature maps at strides 4, 8, 16, 32, all embed_dim wide.

    Arguments that cannot work raise a ValueError or TypeError naming them before anything is built
    (see :mod:`.arguments`); :func:`mmdet_dinov2.models.check_backbone_neck` checks a config's neck.

    Args:
        pretrain_size (int): pre-training image side; the position embedding is stored for
            (pretrain_size // patch_size)**2 patches (592 -> 37x37 for the DINOv2 recipe).
        img_size (int, optional): the original's duplicate of pretrain_size; None or the same grid.
        patch_size (int): must be 16 (DINOv2's 14-pixel patch embeddings are resampled on loading).
        embed_dim (int): ViT and adapter channels.
        depth (int): ViT blocks.
        num_heads (int): ViT attention heads.
        mlp_ratio (float): ViT FFN width over embed_dim.
        drop_path_rate (float): ViT stochastic depth (rising linearly to this) and extractors' ConvFFN's.
        conv_inplane (int): spatial prior module stem width.
        n_points (int): deformable sampling points per head and level.
        deform_num_heads (int): deformable attention heads.
        init_values (float): initial injector output scale (0 = injectors start as identity).
        interaction_indexes (list[list[int]]): [first, last] ViT block of each interaction.
        with_cffn (bool): extractors have a ConvFFN.
        cffn_ratio (float): ConvFFN hidden width over embed_dim.
        deform_ratio (float): deformable attention value width over embed_dim.
        add_vit_feature (bool): add the (resized) ViT output to the four maps.
        use_extra_extractor (bool): two extra extractors after the last interaction.
        window_attn (bool or list[bool]): windowed attention for all or per block.
        window_size (int or list): window side(s) in tokens.
        with_cp (bool): activation checkpointing (blocks, injectors, extractors).
        pretrained (str, optional): weights to load in :meth:`init_weights` (the original's argument).
        ffn_type (str): 'mlp' (ViT-S/B/L) or 'swiglu' (ViT-g).
        norm_cfg (dict): norm of the spatial prior module and of the four outputs; the default SyncBN
            is the original's, use dict(type='BN') on one device without a process group.
        out_indices (sequence[int]): which of the four maps (0 = stride 4) to return.
        freeze_vit (bool): adapter-only training: the ViT's parameters get requires_grad=False and
            its dropout / drop path stay in eval mode.
        pos_embed_type, rope_cfg, with_cls_token, num_register_tokens, final_norm, norm_eps, qkv_bias,
            mask_k_bias: the ViT's, see :class:`~.vit.ViT` (DINOv2 reg4 and DINOv3 settings); the
            class and register tokens run through the blocks but the injectors and extractors see
            only the patch tokens.
        init_cfg (dict, optional): mmengine init config; type 'Pretrained' with ``checkpoint`` (and an
            optional ``trust``) loads weights like ``pretrained``.
        arch (str, optional): a preset of the keys above (:mod:`.archs`): 'dinov2-s', 'dinov2-b',
            'dinov2-l', 'dinov2-g' (the original's recipe on DINOv2), 'dinov3-s', 'dinov3-b',
            'dinov3-l' (the same on DINOv3's ViT). Keys given beside it win.
    """

    def __init__(self, pretrain_size: int = 224, img_size: Optional[int] = None, patch_size: int = 16,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.0, conv_inplane: int = 64, n_points: int = 4,
                 deform_num_heads: int = 6, init_values: float = 0.0,
                 interaction_indexes: Optional[Sequence[Sequence[int]]] = None, with_cffn: bool = True,
                 cffn_ratio: float = 0.25, deform_ratio: float = 1.0, add_vit_feature: bool = True,
                 use_extra_extractor: bool = True, window_attn: Union[bool, Sequence[bool]] = False,
                 window_size: Union[int, None, Sequence[Optional[int]]] = 14, with_cp: bool = False,
                 pretrained: Optional[str] = None, ffn_type: str = 'mlp',
                 norm_cfg: dict = dict(type='SyncBN'), out_indices: Sequence[int] = (0, 1, 2, 3),
                 freeze_vit: bool = False, pos_embed_type: str = 'abs', rope_cfg: Optional[dict] = None,
                 with_cls_token: bool = False, num_register_tokens: int = 0, final_norm: bool = False,
                 norm_eps: float = 1e-6, qkv_bias: bool = True, mask_k_bias: bool = False,
                 init_cfg: Optional[dict] = None):
        if patch_size != VIT_STRIDE:
            raise ValueError(f'patch_size={patch_size}: the adapter reads the ViT tokens as its stride-'
                             f'{VIT_STRIDE} level, so patch_size must be {VIT_STRIDE} (14-pixel DINOv2 '
                             f'patch embeddings are resampled to 16 when loaded)')
        # the adapter's arguments are checked before the ViT is built, the ViT's by ViT.__init__;
        # the per-block lists first, since a changed depth usually leaves them behind
        positive_int('depth', depth)
        _per_block('window_attn', window_attn, depth)
        _per_block('window_size', window_size, depth)
        interaction_indexes, out_indices = check_adapter_arguments(
            embed_dim=embed_dim, depth=depth, conv_inplane=conv_inplane, n_points=n_points,
            deform_num_heads=deform_num_heads, deform_ratio=deform_ratio, with_cffn=with_cffn,
            cffn_ratio=cffn_ratio, interaction_indexes=interaction_indexes, out_indices=out_indices)
        last = len(interaction_indexes) - 1

        def interactions() -> nn.ModuleList:
            return nn.ModuleList([
                InteractionBlock(dim=embed_dim, num_heads=deform_num_heads, num_points=n_points,
                                 init_values=init_values, drop_path=drop_path_rate, with_cffn=with_cffn,
                                 cffn_ratio=cffn_ratio, deform_ratio=deform_ratio,
                                 extra_extractor=use_extra_extractor and i == last, with_cp=with_cp)
                for i in range(len(interaction_indexes))])

        super().__init__(build_interactions=interactions, conv_inplane=conv_inplane, norm_cfg=norm_cfg,
                         out_indices=out_indices, add_vit_feature=add_vit_feature, pretrained=pretrained,
                         init_cfg=init_cfg, pretrain_size=pretrain_size, img_size=img_size,
                         patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                         mlp_ratio=mlp_ratio, ffn_type=ffn_type, drop_path_rate=drop_path_rate,
                         window_attn=window_attn, window_size=window_size, with_cp=with_cp,
                         pos_embed_type=pos_embed_type, rope_cfg=rope_cfg, with_cls_token=with_cls_token,
                         num_register_tokens=num_register_tokens, final_norm=final_norm, norm_eps=norm_eps,
                         qkv_bias=qkv_bias, mask_k_bias=mask_k_bias)
        self.interaction_indexes = interaction_indexes
        self.freeze_vit = freeze_vit
        if freeze_vit:
            for p in self.vit_parameters():
                p.requires_grad_(False)
        if self.norm is not None:
            # the ViT's final norm serves get_intermediate_layers and loads with the file; the adapter
            # reads the raw block outputs, so it gets no gradient and stays out of the optimizer
            self.norm.requires_grad_(False)

    # ---------------------------------------------------------------- modes
    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_vit:  # dropout / drop path (and RoPE's coordinate perturbation) of the frozen ViT stay off
            self.patch_embed.eval()
            self.blocks.eval()
            if self.rope_embed is not None:
                self.rope_embed.eval()
        return self

    # ---------------------------------------------------------------- forward
    def forward(self, img: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H, W), H and W multiples of 32 -> maps (B, embed_dim, H / s, W / s), s = 4, 8, 16, 32
        (those chosen by out_indices)."""
        B = img.shape[0]
        # spatial prior: c1 map at stride 4; c2..c4 flattened, with level embeddings, into one sequence
        c1, c, level_shapes = self.spatial_prior(img)

        P = self.num_prefix_tokens
        x, vit_shape = self.tokens(img)  # (B, P + h * w, C): prefix tokens, patch tokens at stride 16
        geometry = AdapterGeometry.create(vit_shape, level_shapes, img.device)
        for interaction, (first, last) in zip(self.interactions, self.interaction_indexes):
            if P or self.rope_embed is not None:
                x, c = interaction(x, c, blocks=self.blocks[first:last + 1], geometry=geometry,
                                   rope=self.rope_embed, num_prefix=P)
            else:
                x, c = interaction(x, c, blocks=self.blocks[first:last + 1], geometry=geometry)
        if P:
            x = x[:, P:]

        outs = self.level_outputs(c1, c, level_shapes)  # the four maps as (B, h, w, C) tensors
        if self.add_vit_feature:
            vit = x.view(B, *vit_shape, -1).permute(0, 3, 1, 2)  # (B, C, h, w), channels-last memory
            for i, scale in enumerate((4, 2, 1, 0.5)):
                resized = vit if scale == 1 else F.interpolate(vit, scale_factor=scale, mode='bilinear',
                                                               align_corners=False)
                outs[i] = outs[i] + resized.permute(0, 2, 3, 1)
        return self.normed_outputs(outs)
