"""Fake checkpoints: random tensors in the layouts of the released files, one builder per kind.

Kinds: DINOv2 (:func:`dinov2`; ``registers=4`` gives the *_reg4 files), official DINOv3
(:func:`dinov3`), timm's DINOv3 (:func:`dinov3_timm`), the official DINOv3_Adapter
(:func:`dinov3_adapter`) and a detector of the original ViT-Adapter, as mmdet 2.x saved it
(:func:`vit_adapter_detector`). The layouts are written out key by key, from the official code;
tests/checkpoints/test_fake_checkpoints.py checks those of DINOv2-reg4, DINOv3 and DINOv3_Adapter
against the naive references in tests/reference. Tests that compare a model with a naive reference
take the reference's own state dict instead, with values from :func:`random_values`, so that both
hold the same weights.
"""
from collections import OrderedDict

import numpy as np
import torch

DINOV2_GRID = 37  # DINOv2 hub models: img_size 518 / patch 14
ADAPTER_PARTS = ('spm.', 'interactions.', 'up.', 'norm1.', 'norm2.', 'norm3.', 'norm4.',
                 'level_embed')  # what DINOv3_Adapter adds to its ViT (under backbone.)


def dinov2(dim=384, depth=2, *, swiglu=False, registers=0, block_chunks=0, seed=0):
    """A state dict laid out as facebookresearch/dinov2's hub .pth files, with random values.

    Args:
        dim (int): embedding dim D (384/768/1024/1536 for S/B/L/g).
        depth (int): number of blocks (the real files have 12/12/24/40).
        swiglu (bool): ViT-g's fused SwiGLU FFN (mlp.w12, mlp.w3) instead of mlp.fc1/fc2.
        registers (int): number of register tokens (4 for the *_reg4 files).
        block_chunks (int): nest blocks as blocks.<chunk>.<i> (the hub files use 0).
        seed (int): seed of the values.
    """
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen)

    sd = {'cls_token': rand(1, 1, dim), 'pos_embed': rand(1, 1 + DINOV2_GRID * DINOV2_GRID, dim),
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


def dinov3(dim=64, depth=2, *, heads=4, swiglu=False, qkv_bias=True, local_cls_norm=False, seed=0):
    """A state dict laid out as facebookresearch/dinov3's ViT hub files (patch 16, 4 storage tokens,
    RoPE periods of base 100, masked k bias), with random values.

    Args:
        dim (int): embedding dim D.
        depth (int): number of blocks.
        heads (int): attention heads (the RoPE periods are per head: D / heads / 4 of them).
        swiglu (bool): the S+/H+/7B SwiGLU FFN (mlp.w1, w2, w3; ratio 4, aligned to 8) instead of
            mlp.fc1/fc2.
        qkv_bias (bool): qkv bias and its k mask (the 7B has neither).
        local_cls_norm (bool): the 7B's extra norm of the class token of local crops.
        seed (int): seed of the values.
    """
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=g) * 0.1

    sd = {'cls_token': rand(1, 1, dim), 'storage_tokens': rand(1, 4, dim), 'mask_token': rand(1, dim),
          'rope_embed.periods': 100 ** (torch.arange(dim // heads // 4) * 4 / (dim // heads)),
          'patch_embed.proj.weight': rand(dim, 3, 16, 16), 'patch_embed.proj.bias': rand(dim)}
    for i in range(depth):
        p = f'blocks.{i}.'
        sd.update({p + 'norm1.weight': 1 + rand(dim), p + 'norm1.bias': rand(dim),
                   p + 'attn.qkv.weight': rand(3 * dim, dim), p + 'attn.proj.weight': rand(dim, dim),
                   p + 'attn.proj.bias': rand(dim), p + 'ls1.gamma': rand(dim),
                   p + 'norm2.weight': 1 + rand(dim), p + 'norm2.bias': rand(dim),
                   p + 'ls2.gamma': rand(dim)})
        if qkv_bias:
            sd[p + 'attn.qkv.bias'] = rand(3 * dim)
            sd[p + 'attn.qkv.bias_mask'] = torch.cat([torch.ones(dim), torch.zeros(dim),
                                                      torch.ones(dim)])
        if swiglu:
            hidden = int(4 * dim * 2 / 3)
            hidden += -hidden % 8  # SwiGLUFFN's align_to=8
            for w in ('w1', 'w2'):
                sd.update({p + f'mlp.{w}.weight': rand(hidden, dim), p + f'mlp.{w}.bias': rand(hidden)})
            sd.update({p + 'mlp.w3.weight': rand(dim, hidden), p + 'mlp.w3.bias': rand(dim)})
        else:
            sd.update({p + 'mlp.fc1.weight': rand(4 * dim, dim), p + 'mlp.fc1.bias': rand(4 * dim),
                       p + 'mlp.fc2.weight': rand(dim, 4 * dim), p + 'mlp.fc2.bias': rand(dim)})
    sd.update({'norm.weight': 1 + rand(dim), 'norm.bias': rand(dim)})
    if local_cls_norm:
        sd.update({'local_cls_norm.weight': rand(dim), 'local_cls_norm.bias': rand(dim)})
    return sd


def dinov3_timm(name='vit_small_patch16_dinov3', dim=64, heads=4, depth=2, seed=0):
    """timm's DINOv3 model ``name`` at width ``dim`` with its weights perturbed: its state dict is
    a file in timm's names, the model the reference for its features. Seeds the global RNG.

    timm's mlp_ratio is the SwiGLU's own hidden width (S+: 4 = DINOv3's ffn_ratio 6 * 2/3)."""
    import timm
    torch.manual_seed(seed)
    model = timm.create_model(name, embed_dim=dim, num_heads=heads, depth=depth, mlp_ratio=4).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def dinov3_adapter(adapter, depth=4, seed=0, **vit):
    """The official DINOv3_Adapter's state dict: its ViT (:func:`dinov3` of ``depth`` blocks and
    ``vit`` options) under ``backbone.``, and the adapter's own tensors, named and shaped as in
    ``adapter`` (a state dict that holds them: the official names), with random values."""
    sd = {'backbone.' + k: v for k, v in dinov3(depth=depth, seed=seed, **vit).items()}
    parts = {k: v for k, v in adapter.items() if k.startswith(ADAPTER_PARTS)}
    values = random_values({k: v for k, v in parts.items() if v.is_floating_point()}, seed)
    return {**sd, **parts, **values}  # BN's num_batches_tracked as it is


def random_values(state_dict, seed=0):
    """Random values for an official-layout state dict: LayerNorm weights near 1, tokens and weights
    random, bias masks and RoPE periods kept."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state_dict.items():
        if key.endswith(('bias_mask', 'periods')):
            out[key] = value.clone()
        elif 'norm' in key and key.endswith('weight'):
            out[key] = 1 + 0.1 * torch.randn(value.shape, generator=g)
        elif key.endswith('gamma'):
            out[key] = 0.5 + 0.2 * torch.randn(value.shape, generator=g)
        elif value.dim() <= 1 or key.endswith('_token') or key.endswith('_tokens') or key == 'pos_embed':
            out[key] = 0.2 * torch.randn(value.shape, generator=g)
        else:
            fan_in = value[0].numel()
            out[key] = torch.randn(value.shape, generator=g) / fan_in ** 0.5
    return out


def vit_adapter_detector(state_dict, classes):
    """A detector checkpoint as the original ViT-Adapter released it (mmcv 1.x runner, mmdet 2.x):
    meta with the config text, class names, versions, hook messages (numpy scores), the detector's
    ``state_dict`` and an AdamW state with layer-decay ``lr_scale``."""
    meta = dict(mmcv_version='1.4.2', time='Sat Jun  4 10:00:00 2022', env_info='sys.platform: '
                'linux\nPython: 3.7.11', config="model = dict(type='MaskRCNN')\n", seed=0,
                exp_name='mask_rcnn_dinov2_adapter_small_fpn_3x_coco.py',
                mmdet_version='2.22.0+abc1234', CLASSES=tuple(classes), epoch=36, iter=263808,
                hook_msgs=dict(last_ckpt='work_dirs/x/epoch_36.pth', best_score=np.float32(0.515),
                               best_ckpt='work_dirs/x/best_bbox_mAP_epoch_33.pth'),
                iters_per_epoch=np.int64(7328))
    optimizer = dict(state={0: dict(step=10, exp_avg=torch.zeros(3), exp_avg_sq=torch.zeros(3))},
                     param_groups=[dict(lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05,
                                        amsgrad=False, params=[0], lr_scale=0.49)])
    return dict(meta=meta, state_dict=OrderedDict(state_dict), optimizer=optimizer)
