"""Official DINOv3 ViT state dicts (and timm's ``vit_*_patch16_dinov3``) -> the ViT's names.

Official hub files (``dinov3_vit{s16, s16plus, b16, l16, h16plus, 7b16}_pretrain_*.pth``) hold
``cls_token``, ``storage_tokens`` (1, 4, D), ``mask_token``, ``rope_embed.periods``, a 16x16
``patch_embed.proj``, ``blocks.N.{norm1, attn.qkv.{weight, bias, bias_mask}, attn.proj, ls1.gamma,
norm2, mlp.fc1/fc2 | mlp.w1/w2/w3 (SwiGLU), ls2.gamma}``, ``norm`` and, for 7B and the satellite
ViT-L, ``local_cls_norm``; the 7B has no qkv bias. timm's files name the storage tokens
``reg_token``, layer scale ``gamma_1/2``, the SwiGLU inputs ``mlp.fc1_g`` (gate, w1) and
``mlp.fc1_x`` (w2), split the qkv bias into ``attn.q_bias``/``v_bias`` (or drop it) and store
neither the RoPE periods nor the bias mask.
"""
from collections import Counter

from . import convert_keys, notes_for

DINOV3_FORMATS = ('dinov3', 'dinov3_timm', 'dinov3_adapter')
ADAPTER_BACKBONE = 'backbone.'  # the official DINOv3_Adapter keeps its ViT as .backbone
# embed_dim -> official name (S and S+ share 384: the FFN tells them apart)
DINOV3_VARIANTS = {384: 'ViT-S/16 or S+/16', 768: 'ViT-B/16', 1024: 'ViT-L/16', 1280: 'ViT-H+/16',
                   4096: 'ViT-7B/16'}
_MLP, _ATTN = r'^(blocks\.\d+\.mlp\.)', r'^(blocks\.\d+\.attn\.)'


def is_dinov3(state_dict) -> bool:
    """An official DINOv3 ViT state dict: storage tokens, or RoPE periods beside ls1.gamma."""
    return 'storage_tokens' in state_dict or ('rope_embed.periods' in state_dict and any(
        key.endswith('.ls1.gamma') for key in state_dict))


def is_dinov3_timm(state_dict) -> bool:
    """timm's DINOv3 layout: ``reg_token`` and EVA's ``gamma_1``, no absolute position embedding."""
    return ('reg_token' in state_dict and 'pos_embed' not in state_dict
            and any(key.endswith('.gamma_1') for key in state_dict))


def is_dinov3_adapter(state_dict) -> bool:
    """The official DINOv3_Adapter's: a DINOv3 ViT under ``backbone.``, ``spm.*`` beside it."""
    vit = {key[len(ADAPTER_BACKBONE):] for key in state_dict if key.startswith(ADAPTER_BACKBONE)}
    return (bool(vit) and is_dinov3(dict.fromkeys(vit))
            and any(key.startswith('spm.') for key in state_dict))


def dinov3_variant(state_dict) -> str:
    """'ViT-B/16', ... from the class token's width (S vs S+ from the FFN)."""
    dim = int(state_dict['cls_token' if 'cls_token' in state_dict
                         else ADAPTER_BACKBONE + 'cls_token'].shape[-1])
    if dim == 384:
        swiglu = any('.mlp.w1.' in key or '.mlp.fc1_g.' in key for key in state_dict)
        return 'ViT-S+/16' if swiglu else 'ViT-S/16'
    return DINOV3_VARIANTS.get(dim, f'ViT with dim {dim}')


def convert_dinov3(state_dict):
    """(state dict, one note per conversion) of an official DINOv3 ViT state dict in the ViT's
    names: ``storage_tokens`` -> ``register_tokens``, ``ls1/ls2.gamma`` -> ``gamma1/gamma2``, SwiGLU
    ``mlp.w1`` and ``w2`` stacked into ``mlp.fc1`` (gate half first), ``mlp.w3`` -> ``mlp.fc2``,
    ``mask_token`` dropped; the rest keeps its name (``local_cls_norm`` too, for the load report to
    explain)."""
    if not is_dinov3(state_dict):
        raise ValueError('convert_dinov3 expects an official DINOv3 ViT state dict '
                         '(storage_tokens, rope_embed.periods, ls1.gamma); keys look like '
                         f'{list(state_dict)[:6]}')
    converted, counts = convert_keys(
        state_dict, ((r'^storage_tokens$', 'register_tokens', None),
                     (r'\.ls([12])\.gamma', r'.gamma\1', 'ls'), (_MLP + r'w3\.', r'\1fc2.', None)),
        [(_MLP + r'w1\.(weight|bias)$', (r'\1w1.\2', r'\1w2.\2'), r'\1fc1.\2', 'w12')],
        drop=('mask_token',))
    tokens = converted.get('register_tokens')
    notes = [] if tokens is None else [
        f'renamed storage_tokens -> register_tokens {tuple(tokens.shape)}']
    return converted, notes + notes_for(counts, {
        'ls': 'renamed blocks.*.ls1/ls2.gamma -> blocks.*.gamma1/gamma2 (layer scale; {n} tensors)',
        'w12': 'stacked blocks.*.mlp.w1 and mlp.w2 into mlp.fc1, renamed mlp.w3 -> mlp.fc2 '
               "(SwiGLU: fc1's first half is the gate; {n} tensors)",
        'mask_token': 'dropped mask_token (masked-image pretraining only)'})


def convert_dinov3_timm(state_dict):
    """(state dict, one note per conversion) of timm's ``vit_*_patch16_dinov3`` state dict in the
    ViT's names: ``reg_token`` -> ``register_tokens``, ``gamma_1/2`` -> ``gamma1/2``, ``mlp.fc1_g``
    and ``fc1_x`` stacked into ``mlp.fc1``, ``attn.q_bias``/``v_bias`` joined into ``attn.qkv.bias``
    with a zero k third (DINOv3 masks the k bias). :func:`fill_timm_gaps` adds what timm lacks."""
    if not is_dinov3_timm(state_dict):
        raise ValueError("convert_dinov3_timm expects timm's DINOv3 layout (reg_token, gamma_1, no "
                         f'pos_embed); keys look like {list(state_dict)[:6]}')
    converted, counts = convert_keys(
        state_dict, ((r'^reg_token$', 'register_tokens', 'registers'),
                     (r'\.gamma_([12])', r'.gamma\1', 'gamma')),
        [(_MLP + r'fc1_g\.(weight|bias)$', (r'\1fc1_g.\2', r'\1fc1_x.\2'), r'\1fc1.\2', 'glu'),
         (_ATTN + r'q_bias$', (r'\1q_bias', None, r'\1v_bias'), r'\1qkv.bias', 'qv')])
    return converted, notes_for(counts, {
        'registers': 'renamed reg_token -> register_tokens',
        'gamma': 'renamed blocks.*.gamma_1/gamma_2 -> blocks.*.gamma1/gamma2 ({n} tensors)',
        'glu': 'stacked blocks.*.mlp.fc1_g and fc1_x into mlp.fc1 ({n} blocks)',
        'qv': 'joined blocks.*.attn.q_bias, a zero k bias and v_bias into attn.qkv.bias '
              '({n} blocks)'})


def convert_dinov3_adapter(state_dict, drop_unused=False):
    """(state dict, one note per conversion) of the official DINOv3_Adapter's state dict in
    :class:`DINOv3Adapter`'s names: its ``backbone.*`` ViT through :func:`convert_dinov3` (without
    ``backbone.``), the adapter's keys as they are. ``drop_unused`` also drops ``local_cls_norm`` /
    ``cls_norm`` (for a strict load)."""
    if not is_dinov3_adapter(state_dict):
        raise ValueError('convert_dinov3_adapter expects the official DINOv3_Adapter state dict '
                         f'(backbone.storage_tokens, spm.*); keys look like {list(state_dict)[:6]}')
    converted, notes = convert_dinov3({k[len(ADAPTER_BACKBONE):]: v for k, v in state_dict.items()
                                       if k.startswith(ADAPTER_BACKBONE)})
    notes = ["took the ViT from the official DINOv3_Adapter's backbone.*"] + notes
    if drop_unused and (dropped := [k for k in converted
                                    if k.startswith(('local_cls_norm.', 'cls_norm.'))]):
        notes.append(f'dropped {", ".join(dropped)} (pretraining only)')
        for key in dropped:
            del converted[key]
    converted.update({k: v for k, v in state_dict.items() if not k.startswith(ADAPTER_BACKBONE)})
    return converted, notes


def fill_timm_gaps(state_dict, model_state):
    """Add to ``state_dict`` (from :func:`convert_dinov3_timm`) what timm's files lack, from
    ``model_state``: the RoPE periods and k-bias masks (what timm computes: base 100, k masked),
    and a zero qkv bias for variants without one. Returns one note per kind of entry added."""
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
        'periods': "kept the model's rope_embed.periods (timm stores none; it computes the same "
                   'from base 100)',
        'mask': "kept the model's attn.qkv.bias_mask (k bias masked; {n} blocks)",
        'bias': "set attn.qkv.bias to 0 ({n} blocks): the file has none (timm's DINOv3 variant "
                'without qkv bias)'})
