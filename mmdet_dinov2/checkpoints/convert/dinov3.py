"""Official DINOv3 ViT state dicts (and timm's ``vit_*_patch16_dinov3``) -> the ViT's parameter names.

Official hub files (``dinov3_vit{s16, s16plus, b16, l16, h16plus, 7b16}_pretrain_*.pth``) hold
``cls_token``, ``storage_tokens`` (1, 4, D), ``mask_token``, ``rope_embed.periods``, a 16x16
``patch_embed.proj``, ``blocks.N.{norm1, attn.qkv.{weight, bias, bias_mask}, attn.proj, ls1.gamma,
norm2, mlp.fc1/fc2 | mlp.w1/w2/w3 (SwiGLU), ls2.gamma}``, ``norm`` and, for 7B and the satellite
ViT-L, ``local_cls_norm``; the 7B has no qkv bias. timm's files name the storage tokens
``reg_token``, layer scale ``gamma_1/2``, the SwiGLU inputs ``mlp.fc1_g`` (gate, w1) and
``mlp.fc1_x`` (w2), split the qkv bias into ``attn.q_bias``/``v_bias`` (or drop it) and store
neither the RoPE periods nor the bias mask.
"""
import re
from collections import Counter

import torch

DINOV3_FORMATS = ('dinov3', 'dinov3_timm', 'dinov3_adapter')
ADAPTER_BACKBONE = 'backbone.'  # the official DINOv3_Adapter keeps its ViT as .backbone
# embed_dim -> official name (S and S+ share 384: the FFN tells them apart)
DINOV3_VARIANTS = {384: 'ViT-S/16 or S+/16', 768: 'ViT-B/16', 1024: 'ViT-L/16', 1280: 'ViT-H+/16',
                   4096: 'ViT-7B/16'}

_SWIGLU = re.compile(r'^(blocks\.\d+\.mlp\.)w([123])\.(weight|bias)$')
_TIMM_SWIGLU = re.compile(r'^(blocks\.\d+\.mlp\.)fc1_([gx])\.(weight|bias)$')
_TIMM_QV_BIAS = re.compile(r'^(blocks\.\d+\.attn\.)([qv])_bias$')


def is_dinov3(state_dict) -> bool:
    """An official DINOv3 ViT state dict: storage tokens, or RoPE periods beside DINOv3's ls1.gamma."""
    return 'storage_tokens' in state_dict or (
        'rope_embed.periods' in state_dict and any(key.endswith('.ls1.gamma') for key in state_dict))


def is_dinov3_timm(state_dict) -> bool:
    """timm's DINOv3 layout: ``reg_token`` and EVA's ``gamma_1``, no absolute position embedding."""
    return ('reg_token' in state_dict and 'pos_embed' not in state_dict
            and any(key.endswith('.gamma_1') for key in state_dict))


def is_dinov3_adapter(state_dict) -> bool:
    """The official DINOv3_Adapter's state dict: a DINOv3 ViT under ``backbone.``, ``spm.*`` beside it."""
    vit = {key[len(ADAPTER_BACKBONE):] for key in state_dict if key.startswith(ADAPTER_BACKBONE)}
    return bool(vit) and is_dinov3(dict.fromkeys(vit)) and any(key.startswith('spm.') for key in state_dict)


def is_dinov3_convnext(state_dict) -> bool:
    """A DINOv3 (or any) ConvNeXt: ``downsample_layers`` and ``stages``, no patch embedding."""
    return (any(key.startswith('downsample_layers.') for key in state_dict)
            and any(key.startswith('stages.') for key in state_dict))


def dinov3_variant(state_dict) -> str:
    """'ViT-B/16', ... from the class token's width (S vs S+ from the FFN)."""
    cls = state_dict['cls_token'] if 'cls_token' in state_dict else state_dict[ADAPTER_BACKBONE + 'cls_token']
    dim = int(cls.shape[-1])
    if dim == 384:
        swiglu = any('.mlp.w1.' in key or '.mlp.fc1_g.' in key for key in state_dict)
        return 'ViT-S+/16' if swiglu else 'ViT-S/16'
    return DINOV3_VARIANTS.get(dim, f'ViT with dim {dim}')


def convert_dinov3(state_dict):
    """Convert an official DINOv3 ViT state dict to the ViT's names: ``storage_tokens`` ->
    ``register_tokens``, ``ls1/ls2.gamma`` -> ``gamma1/gamma2``, SwiGLU ``mlp.w1`` and ``w2`` stacked
    into ``mlp.fc1`` (gate half first), ``mlp.w3`` -> ``mlp.fc2``, ``mask_token`` dropped; the rest
    keeps its name (``local_cls_norm`` too, for the load report to explain).

    Returns:
        tuple[dict, list[str]]: the state dict and one line per conversion applied.
    """
    if not is_dinov3(state_dict):
        raise ValueError('convert_dinov3 expects an official DINOv3 ViT state dict (storage_tokens, '
                         f'rope_embed.periods, ls1.gamma); keys look like {list(state_dict)[:6]}')
    converted, counts = {}, Counter()
    for key, value in state_dict.items():
        if key == 'mask_token':
            counts['mask_token'] += 1
        elif m := _SWIGLU.match(key):
            prefix, index, kind = m.groups()
            if index == '1':
                converted[f'{prefix}fc1.{kind}'] = torch.cat([value, state_dict[f'{prefix}w2.{kind}']])
                counts['w12'] += 1
            elif index == '3':
                converted[f'{prefix}fc2.{kind}'] = value
        else:
            new_key = 'register_tokens' if key == 'storage_tokens' else (
                key.replace('.ls1.gamma', '.gamma1').replace('.ls2.gamma', '.gamma2'))
            counts['ls'] += new_key != key and key != 'storage_tokens'
            converted[new_key] = value
    notes = ([f'renamed storage_tokens -> register_tokens {tuple(converted["register_tokens"].shape)}']
             if 'register_tokens' in converted else [])
    return converted, notes + notes_for(counts, {
        'ls': 'renamed blocks.*.ls1/ls2.gamma -> blocks.*.gamma1/gamma2 (layer scale; {n} tensors)',
        'w12': 'stacked blocks.*.mlp.w1 and mlp.w2 into mlp.fc1, renamed mlp.w3 -> mlp.fc2 (SwiGLU: '
               "fc1's first half is the gate; {n} tensors)",
        'mask_token': 'dropped mask_token (masked-image pretraining only)'})


def convert_dinov3_timm(state_dict):
    """Convert timm's ``vit_*_patch16_dinov3`` state dict to the ViT's names: ``reg_token`` ->
    ``register_tokens``, ``gamma_1/2`` -> ``gamma1/2``, ``mlp.fc1_g`` and ``fc1_x`` stacked into
    ``mlp.fc1``, ``attn.q_bias``/``v_bias`` joined into ``attn.qkv.bias`` with a zero k third (DINOv3
    masks the k bias). :func:`fill_timm_gaps` adds what timm does not store.

    Returns:
        tuple[dict, list[str]]: the state dict and one line per conversion applied.
    """
    if not is_dinov3_timm(state_dict):
        raise ValueError("convert_dinov3_timm expects timm's DINOv3 layout (reg_token, gamma_1, no "
                         f'pos_embed); keys look like {list(state_dict)[:6]}')
    converted, counts = {}, Counter()
    for key, value in state_dict.items():
        if m := _TIMM_SWIGLU.match(key):
            prefix, part, kind = m.groups()
            if part == 'g':
                converted[f'{prefix}fc1.{kind}'] = torch.cat([value, state_dict[f'{prefix}fc1_x.{kind}']])
                counts['glu'] += 1
        elif m := _TIMM_QV_BIAS.match(key):
            prefix, part = m.groups()
            if part == 'q':
                v_bias = state_dict[f'{prefix}v_bias']
                converted[f'{prefix}qkv.bias'] = torch.cat([value, torch.zeros_like(value), v_bias])
                counts['qv'] += 1
        else:
            new_key = 'register_tokens' if key == 'reg_token' else (
                key.replace('.gamma_1', '.gamma1').replace('.gamma_2', '.gamma2'))
            counts['gamma'] += new_key != key and key != 'reg_token'
            converted[new_key] = value
    counts['registers'] = 'register_tokens' in converted
    return converted, notes_for(counts, {
        'registers': 'renamed reg_token -> register_tokens',
        'gamma': 'renamed blocks.*.gamma_1/gamma_2 -> blocks.*.gamma1/gamma2 ({n} tensors)',
        'glu': 'stacked blocks.*.mlp.fc1_g and fc1_x into mlp.fc1 ({n} blocks)',
        'qv': 'joined blocks.*.attn.q_bias, a zero k bias and v_bias into attn.qkv.bias ({n} blocks)'})


def convert_dinov3_adapter(state_dict, drop_unused=False):
    """Convert the official DINOv3_Adapter's state dict to :class:`DINOv3Adapter`'s names: its
    ``backbone.*`` ViT through :func:`convert_dinov3` (without ``backbone.``), the adapter's keys as
    they are. ``drop_unused`` also drops ``local_cls_norm`` / ``cls_norm`` (for a strict load).

    Returns:
        tuple[dict, list[str]]: the state dict and one line per conversion applied.
    """
    if not is_dinov3_adapter(state_dict):
        raise ValueError('convert_dinov3_adapter expects the official DINOv3_Adapter state dict '
                         f'(backbone.storage_tokens, spm.*); keys look like {list(state_dict)[:6]}')
    vit = {k[len(ADAPTER_BACKBONE):]: v for k, v in state_dict.items() if k.startswith(ADAPTER_BACKBONE)}
    converted, notes = convert_dinov3(vit)
    notes = ["took the ViT from the official DINOv3_Adapter's backbone.*"] + notes
    if drop_unused:
        dropped = [k for k in converted if k.startswith(('local_cls_norm.', 'cls_norm.'))]
        for key in dropped:
            del converted[key]
        if dropped:
            notes.append(f'dropped {", ".join(dropped)} (pretraining only)')
    converted.update({k: v for k, v in state_dict.items() if not k.startswith(ADAPTER_BACKBONE)})
    return converted, notes


def fill_timm_gaps(state_dict, model_state):
    """Add to ``state_dict`` (from :func:`convert_dinov3_timm`) what timm's files lack, from
    ``model_state``: the RoPE periods and k-bias masks (what timm computes: base 100, k masked), and
    a zero qkv bias for variants without one.

    Returns:
        list[str]: one line per kind of entry added.
    """
    filled = Counter()
    for key, value in model_state.items():
        if key in state_dict:
            continue
        if key == 'rope_embed.periods' or key.endswith('.attn.qkv.bias_mask'):
            state_dict[key] = value.clone()
            filled['periods' if key.startswith('rope') else 'mask'] += 1
        elif key.endswith('.attn.qkv.bias'):
            state_dict[key] = value.new_zeros(value.shape)
            filled['bias'] += 1
    return notes_for(filled, {
        'periods': "kept the model's rope_embed.periods (timm stores none; it computes the same from "
                   'base 100)',
        'mask': "kept the model's attn.qkv.bias_mask (k bias masked; {n} blocks)",
        'bias': "set attn.qkv.bias to 0 ({n} blocks): the file has none (timm's DINOv3 variant "
                'without qkv bias)'})


def notes_for(counts, lines):
    """The line (``{n}``: the count) of each kind in ``lines`` that ``counts`` counted."""
    return [line.format(n=counts[kind]) for kind, line in lines.items() if counts[kind]]
