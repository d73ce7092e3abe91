"""Backbone settings of the original DINOv2 recipes and of the DINOv3 hub, and the naive reference
for a setting of ours, shared by the backbone tests."""
import torch

from tests.reference import vit_adapter_naive

# backbone dicts of czczup/ViT-Adapter detection/configs/mask_rcnn/dinov2/*_fpn_3x_coco.py
_WINDOWS_3 = dict(window_attn=[True, True, False] * 4, window_size=[14, 14, None] * 4)
DINOV2_S = dict(pretrain_size=592, img_size=592, patch_size=16, embed_dim=384, depth=12, num_heads=6, mlp_ratio=4,
                drop_path_rate=0.2, conv_inplane=64, n_points=4, deform_num_heads=6, cffn_ratio=0.25,
                deform_ratio=1.0, interaction_indexes=[[0, 2], [3, 5], [6, 8], [9, 11]], **_WINDOWS_3)
DINOV2_B = dict(DINOV2_S, embed_dim=768, num_heads=12, drop_path_rate=0.3, deform_num_heads=12, deform_ratio=0.5)
DINOV2_L = dict(DINOV2_S, embed_dim=1024, depth=24, num_heads=16, drop_path_rate=0.4, deform_num_heads=16,
                deform_ratio=0.5, interaction_indexes=[[0, 5], [6, 11], [12, 17], [18, 23]],
                window_attn=([True] * 5 + [False]) * 4, window_size=([14] * 5 + [None]) * 4)
# ViT-g: no original config; DINOv2-g widths, SwiGLU, L's window pattern over 4 groups of 10 blocks
DINOV2_G = dict(DINOV2_L, embed_dim=1536, depth=40, num_heads=24, deform_num_heads=24, ffn_type='swiglu',
                interaction_indexes=[[0, 9], [10, 19], [20, 29], [30, 39]],
                window_attn=([True] * 9 + [False]) * 4, window_size=([14] * 9 + [None]) * 4)
# B's and L's real widths with one block per interaction, to stay fast on a CPU
_SHALLOW = dict(depth=4, interaction_indexes=[[0, 0], [1, 1], [2, 2], [3, 3]],
                window_attn=[True, False, True, False], window_size=[14, None, 14, None])
DINOV2_B_SHALLOW = dict(DINOV2_B, **_SHALLOW)
DINOV2_L_SHALLOW = dict(DINOV2_L, **_SHALLOW)

# name -> backbone dict; copy before changing
CONFIGS = dict(S=DINOV2_S, B=DINOV2_B, L=DINOV2_L, G=DINOV2_G, B_shallow=DINOV2_B_SHALLOW,
               L_shallow=DINOV2_L_SHALLOW)


def windows_of(cfg):
    """Per-block window side (None = global) of a config, as the naive reference takes it."""
    return [w if a else None for a, w in zip(cfg['window_attn'], cfg['window_size'])]


def build_naive(cfg):
    """The naive reference model for a backbone dict of ours."""
    dim, ratio = cfg['embed_dim'], cfg.get('mlp_ratio', 4)
    swiglu = cfg.get('ffn_type', 'mlp') == 'swiglu'
    hidden = (int(dim * ratio * 2 / 3) + 7) // 8 * 8 if swiglu else int(dim * ratio)
    return vit_adapter_naive.NaiveViTAdapter(
        embed_dim=dim, depth=cfg['depth'], num_heads=cfg['num_heads'], mlp_hidden=hidden, swiglu=swiglu,
        pos_grid=cfg['pretrain_size'] // 16, conv_inplane=cfg['conv_inplane'], n_points=cfg['n_points'],
        deform_num_heads=cfg['deform_num_heads'], deform_ratio=cfg['deform_ratio'],
        cffn_ratio=cfg['cffn_ratio'], interaction_indexes=cfg['interaction_indexes'], windows=windows_of(cfg))


def randomized(state_dict, seed=0):
    """The state dict with every float tensor perturbed, so that no branch is a no-op (injector
    gammas start at 0) and BN running statistics are non-trivial."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state_dict.items():
        if not value.is_floating_point():
            out[key] = value
        elif key.endswith('running_var'):
            out[key] = torch.rand(value.shape, generator=g) + 0.5
        elif key.endswith('running_mean'):
            out[key] = torch.randn(value.shape, generator=g) * 0.1
        else:
            out[key] = value + torch.randn(value.shape, generator=g) * (0.2 if value.dim() <= 1 else 0.02)
    return out


# DINOv3 ViTs as facebookresearch/dinov3's hub/backbones.py defines them: embed_dim, depth, heads,
# ffn_ratio, ffn layer, qkv bias. All: patch 16, RoPE base 100 'separate', 4 storage tokens,
# LayerScale, LayerNorm eps 1e-5, masked k bias, final norm.
DINOV3_HUB = {
    'S': dict(embed_dim=384, depth=12, num_heads=6, ffn_ratio=4, ffn='mlp', qkv_bias=True),
    'S+': dict(embed_dim=384, depth=12, num_heads=6, ffn_ratio=6, ffn='swiglu', qkv_bias=True),
    'B': dict(embed_dim=768, depth=12, num_heads=12, ffn_ratio=4, ffn='mlp', qkv_bias=True),
    'L': dict(embed_dim=1024, depth=24, num_heads=16, ffn_ratio=4, ffn='mlp', qkv_bias=True),
    'H+': dict(embed_dim=1280, depth=32, num_heads=20, ffn_ratio=6, ffn='swiglu', qkv_bias=True),
    '7B': dict(embed_dim=4096, depth=40, num_heads=32, ffn_ratio=3, ffn='swiglu64', qkv_bias=False),
}


def dinov3_vit_kwargs(arch, **overrides):
    """Our ViT's keyword arguments for a DINOv3 hub architecture."""
    hub = dict(DINOV3_HUB[arch], **overrides)
    return dict(patch_size=16, embed_dim=hub['embed_dim'], depth=hub['depth'], num_heads=hub['num_heads'],
                mlp_ratio=hub['ffn_ratio'], ffn_type=hub['ffn'], qkv_bias=hub['qkv_bias'],
                mask_k_bias=True, pos_embed_type='rope', rope_cfg=dict(base=100.0, rescale_coords=2.0),
                with_cls_token=True, num_register_tokens=4, final_norm=True, norm_eps=1e-5)


def dinov3_naive_kwargs(arch, **overrides):
    """The naive official model's keyword arguments for a DINOv3 hub architecture."""
    hub = dict(DINOV3_HUB[arch], **overrides)
    ffn = hub['ffn']
    return dict(embed_dim=hub['embed_dim'], depth=hub['depth'], num_heads=hub['num_heads'],
                ffn_ratio=hub['ffn_ratio'], ffn='mlp' if ffn == 'mlp' else 'swiglu',
                swiglu_align=64 if ffn == 'swiglu64' else 8, qkv_bias=hub['qkv_bias'],
                untie_global_and_local_cls_norm=arch == '7B')
