"""Named backbone settings: ``arch='dinov2-b'`` stands for the keys of the original ViT-Adapter
recipe for that ViT, as mmpretrain's ``arch`` does for its backbones.

A config names the preset and gives only what is its own, ``backbone=dict(type='ViTAdapter',
arch='dinov2-b', pretrained=...)``; every key it also gives wins over the preset's, so a child
config changes one setting through ``model.backbone`` as with any other key
(``model.backbone.drop_path_rate=0.1``). ``tests/configs/test_config_dumps.py`` checks that every
config, its preset expanded, holds the values of its reference dump.
"""
import copy
import functools
import inspect
from typing import Optional

# ViTAdapter: DINOv2's ViTs with the original's adapter recipe. The 14-pixel patch embedding is
# resampled to 16 when loaded, and DINOv2's 518x518 position grid (37x37 patches) read as 37x37
# patches of 16 (592). Windowed attention (14x14) runs in every block but the last of each
# interaction; the four output norms are SyncBN as in the original.
_DINOV2_S = dict(
    pretrain_size=592, img_size=592, patch_size=16, embed_dim=384, depth=12, num_heads=6,
    mlp_ratio=4, drop_path_rate=0.2, window_attn=[True, True, False] * 4,
    window_size=[14, 14, None] * 4, conv_inplane=64, n_points=4, deform_num_heads=6,
    cffn_ratio=0.25, deform_ratio=1.0, interaction_indexes=[[0, 2], [3, 5], [6, 8], [9, 11]],
    norm_cfg=dict(type='SyncBN', requires_grad=True))
_DINOV2_B = dict(_DINOV2_S, embed_dim=768, num_heads=12, drop_path_rate=0.3, deform_num_heads=12,
                 deform_ratio=0.5)
_DINOV2_L = dict(_DINOV2_B, embed_dim=1024, depth=24, num_heads=16, drop_path_rate=0.4,
                 window_attn=([True] * 5 + [False]) * 4, window_size=([14] * 5 + [None]) * 4,
                 deform_num_heads=16, interaction_indexes=[[0, 5], [6, 11], [12, 17], [18, 23]])
# ViT-g: DINOv2's fused SwiGLU FFN (hidden 4096); drop path one step past L's (not in the original)
_DINOV2_G = dict(_DINOV2_L, embed_dim=1536, depth=40, num_heads=24, ffn_type='swiglu',
                 drop_path_rate=0.5, window_attn=([True] * 9 + [False]) * 4,
                 window_size=([14] * 9 + [None]) * 4, deform_num_heads=24,
                 interaction_indexes=[[0, 9], [10, 19], [20, 29], [30, 39]])
# DINOv3's ViT (the official hub's dinov3_vit*16): RoPE instead of a position grid, a class token
# and 4 storage tokens through the blocks, LayerScale, LayerNorm eps 1e-5, masked k bias. The
# adapter recipe is DINOv2's of the same size, not yet validated on COCO with DINOv3.
_DINOV3_VIT = dict(
    pretrain_size=224, img_size=None, pos_embed_type='rope',
    rope_cfg=dict(base=100.0, normalize_coords='separate', rescale_coords=2.0),
    with_cls_token=True, num_register_tokens=4, final_norm=True, norm_eps=1e-5, mask_k_bias=True)

# DINOv3Adapter: the frozen DINOv3 ViT with its own adapter (one extractor per interaction index)
_FROZEN_S = dict(
    embed_dim=384, depth=12, num_heads=6, mlp_ratio=4,
    rope_cfg=dict(base=100.0, normalize_coords='separate', rescale_coords=2.0),
    interaction_indexes=[2, 5, 8, 11], conv_inplane=64, n_points=4, deform_num_heads=16,
    drop_path_rate=0.3, cffn_ratio=0.25, deform_ratio=0.5,
    norm_cfg=dict(type='SyncBN', requires_grad=True))

ARCHS = {
    'ViTAdapter': {
        'dinov2-s': _DINOV2_S, 'dinov2-b': _DINOV2_B, 'dinov2-l': _DINOV2_L, 'dinov2-g': _DINOV2_G,
        'dinov3-s': dict(_DINOV2_S, **_DINOV3_VIT), 'dinov3-b': dict(_DINOV2_B, **_DINOV3_VIT),
        'dinov3-l': dict(_DINOV2_L, **_DINOV3_VIT),
    },
    'DINOv3Adapter': {
        'dinov3-s': _FROZEN_S,
        'dinov3-l': dict(_FROZEN_S, embed_dim=1024, depth=24, num_heads=16,
                         interaction_indexes=[4, 11, 17, 23]),
        'dinov3-7b': dict(_FROZEN_S, embed_dim=4096, depth=40, num_heads=32, mlp_ratio=3,
                          ffn_type='swiglu64', qkv_bias=False, interaction_indexes=[9, 19, 29, 39]),
    },
}


def has_presets(type_) -> bool:
    """Whether a config's backbone ``type`` (a name, a scoped ``'mmdet.ViTAdapter'`` or the class)
    has a table in :data:`ARCHS`."""
    return _class_name(type_) in ARCHS


def _class_name(type_):
    return type_.__name__ if isinstance(type_, type) else str(type_).rsplit('.', 1)[-1]


def arch_settings(class_name, arch: Optional[str]) -> dict:
    """A copy of the keys ``arch`` stands for in the table of ``class_name`` (as in
    :func:`has_presets`); {} for None.

    Raises:
        ValueError: naming the arch and the class's presets.
    """
    if arch is None:
        return {}
    class_name = _class_name(class_name)
    presets = ARCHS.get(class_name, {})
    if arch not in presets:
        raise ValueError(f'model.backbone.arch={arch!r}: {class_name} has the presets '
                         f'{sorted(presets)} (mmdet_dinov2/models/backbones/archs.py), or leave arch '
                         f'out and give every key')
    return copy.deepcopy(presets[arch])


def expand_arch(backbone: dict, class_name: Optional[str] = None) -> dict:
    """A backbone config dict with its ``arch`` replaced by the preset's keys (its own keys win);
    ``class_name`` defaults to the dict's ``type``."""
    backbone = dict(backbone)
    arch = backbone.pop('arch', None)
    return {**arch_settings(class_name or backbone.get('type'), arch), **backbone}


def with_arch(cls):
    """Class decorator: ``cls(arch=NAME, **keys)`` builds ``cls(**{**preset, **keys})``; the
    signature stays the class's own, with ``arch`` added as a keyword."""
    init = cls.__init__
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, arch: Optional[str] = None, **kwargs):
        given = signature.bind_partial(self, *args, **kwargs).arguments  # positional ones too
        del given['self']
        init(self, **{**arch_settings(cls.__name__, arch), **given})

    __init__.__signature__ = signature.replace(parameters=[
        *signature.parameters.values(),
        inspect.Parameter('arch', inspect.Parameter.KEYWORD_ONLY, default=None)])
    cls.__init__ = __init__
    return cls
