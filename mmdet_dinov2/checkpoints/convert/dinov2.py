"""Official DINOv2 state dicts -> the ViTAdapter's names and patch size; which layout a file has.

Official hub files (``dinov2_vit{s,b,l,g}14[_reg4]_pretrain.pth``) hold ``cls_token``,
``pos_embed`` (1, 1 + 37 * 37, D), ``mask_token``, ``register_tokens`` (reg4), a 14x14
``patch_embed.proj``, ``blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1/fc2 |
mlp.w12/w3 (ViT-g SwiGLU), ls2.gamma}`` and ``norm``. The conversion follows the original
ViT-Adapter's ``convert_14to16.py``; the SwiGLU weights take timm's ``GluMlp`` names. ViT-Adapter
checkpoints already use these names.
"""
import re

import torch.nn.functional as F
from timm.layers import resample_patch_embed

from . import convert_keys, notes_for
from .dinov3 import is_dinov3, is_dinov3_adapter, is_dinov3_timm

RESAMPLE_METHODS = ('bilinear', 'pinv')
DETECTOR_PREFIX = 'backbone.'
PATCH_KERNEL = 'patch_embed.proj.weight'
ADAPTER_PREFIXES = ('level_embed', 'spm.', 'interactions.', 'up.', 'norm1.', 'norm2.', 'norm3.',
                    'norm4.')
# Names only DINOv2's own code uses (timm/ViT-Adapter call them gamma1/2, fc1/fc2).
_DINOV2_ONLY = re.compile(r'\.ls[12]\.gamma$|\.mlp\.w(12|3)\.')
# (DINOv2 name, our name, why), replaced anywhere in a key as the original converter does.
_RENAMES = (('ls1.gamma', 'gamma1', 'layer scale'), ('ls2.gamma', 'gamma2', 'layer scale'),
            ('mlp.w12.', 'mlp.fc1.', "SwiGLU input projection (timm GluMlp's name)"),
            ('mlp.w3.', 'mlp.fc2.', "SwiGLU output projection (timm GluMlp's name)"))


def detect_format(state_dict):
    """Name the layout of a state dict.

    Returns:
        str: ``'dinov2'`` (official DINOv2), ``'dinov3'`` (official DINOv3 ViT), ``'dinov3_timm'``
        (timm's ``vit_*_patch16_dinov3``), ``'dinov3_adapter'`` (the official DINOv3_Adapter),
        ``'dinov2_converted'`` (a plain ViT in our names, e.g. from ``tools/convert_14to16.py``),
        ``'vit_adapter_detector'`` (a detector, backbone under ``backbone.``) or
        ``'vit_adapter_backbone'`` (ViT + adapter).

    Raises:
        ValueError: no DINOv2/DINOv3/ViT-Adapter checkpoint (e.g. a ResNet or DINOv3's ConvNeXt).
    """
    keys = list(state_dict)
    if is_dinov3_adapter(state_dict):
        return 'dinov3_adapter'
    if any(key.startswith(DETECTOR_PREFIX) for key in keys):
        if DETECTOR_PREFIX + PATCH_KERNEL in state_dict:
            return 'vit_adapter_detector'
        _raise_not_vit(keys, 'its backbone.* ')
    if (any(key.startswith('downsample_layers.') for key in keys)
            and any(key.startswith('stages.') for key in keys)):  # a DINOv3 (or any) ConvNeXt
        raise ValueError(
            'this is a ConvNeXt checkpoint (downsample_layers.*, stages.*), e.g. DINOv3\'s '
            'dinov3_convnext_*_pretrain_*.pth: ViT-Adapter needs a ViT. Use a DINOv3 ViT file '
            '(dinov3_vit*16_pretrain_*.pth) with a mask-rcnn_dinov3-adapter-{s,b,l}_fpn_3x_coco.py '
            'config')
    if PATCH_KERNEL not in state_dict or not any(key.startswith('blocks.') for key in keys):
        _raise_not_vit(keys)
    if is_dinov3(state_dict):
        return 'dinov3'
    if is_dinov3_timm(state_dict):
        return 'dinov3_timm'
    if 'mask_token' in state_dict or any(_DINOV2_ONLY.search(key) for key in keys):
        return 'dinov2'
    if any(key.startswith(ADAPTER_PREFIXES) for key in keys):
        return 'vit_adapter_backbone'
    return 'dinov2_converted'


def _raise_not_vit(keys, where=''):
    raise ValueError(
        f'this is not a DINOv2/ViT-Adapter checkpoint: {where}keys look like {keys[:6]} '
        f'({len(keys)} in all), with no {PATCH_KERNEL} and blocks.*; use an official DINOv2 file '
        '(dinov2_vit*14*_pretrain.pth), its _14to16 conversion, an official DINOv3 ViT file '
        '(dinov3_vit*16_pretrain_*.pth) or a ViT-Adapter checkpoint')


def strip_prefix(state_dict, prefix=DETECTOR_PREFIX):
    """Keep the entries under ``prefix`` (e.g. a detector's ``backbone.``), without the prefix."""
    stripped = {key[len(prefix):]: value for key, value in state_dict.items()
                if key.startswith(prefix)}
    if not stripped:
        raise ValueError(f'no key starts with {prefix!r}; keys look like {list(state_dict)[:6]}')
    return stripped


def resample_patch_embed_kernel(weight, patch_size, method='bilinear'):
    """Resize a patch-embedding kernel (D, C, k, k) -> (D, C, p, p).

    Args:
        patch_size (int | tuple[int, int]): p.
        method (str): ``'bilinear'`` (``F.interpolate``, as the original ViT-Adapter) or ``'pinv'``
            (FlexiViT's pseudo-inverse, timm's ``resample_patch_embed``: the embedding of a
            bilinearly upsampled image equals the old kernel's on the original).
    """
    size = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
    if method not in RESAMPLE_METHODS:
        raise ValueError(f'unknown resampling method {method!r}; use one of {RESAMPLE_METHODS}')
    if weight.ndim != 4:
        raise ValueError(f'{PATCH_KERNEL} must be 4-D (D, C, k, k), got {tuple(weight.shape)}')
    if tuple(weight.shape[-2:]) == size:
        return weight
    if method == 'bilinear':
        return F.interpolate(weight, size=size, mode='bilinear', align_corners=False)
    return resample_patch_embed(weight, list(size), interpolation='bilinear', antialias=False)


def resample_note(old, new, method):
    """'resampled patch_embed.proj.weight 14x14 -> 16x16 (bilinear)', or that it was kept."""
    old_size, new_size = 'x'.join(map(str, old.shape[-2:])), 'x'.join(map(str, new.shape[-2:]))
    if old_size == new_size:
        return f'{PATCH_KERNEL} already {new_size}: kept'
    return f'resampled {PATCH_KERNEL} {old_size} -> {new_size} ({method})'


def convert_dinov2(state_dict, patch_size=16, method='bilinear'):
    """(state dict, one note per conversion) of an official DINOv2 state dict (S/B/L/g, reg4 or
    not) in the ViTAdapter's names, its 14x14 kernel resized to ``patch_size`` by ``method``
    (:func:`resample_patch_embed_kernel`); ``cls_token``, ``norm.*`` and ``register_tokens`` are
    kept, as the original converter does."""
    fmt = detect_format(state_dict)
    if fmt != 'dinov2':
        hint = ('already converted (no ls1.gamma / mask_token / mlp.w12)'
                if fmt == 'dinov2_converted' else f'a {fmt} checkpoint')
        raise ValueError('convert_dinov2 expects an official DINOv2 state dict; this one is '
                         + hint)
    converted, counts = convert_keys(  # block_chunks > 0 nests blocks as blocks.<chunk>.<index>
        state_dict, [(r'^blocks\.\d+\.(\d+)\.', r'blocks.\1.', 'unchunk')]
        + [(re.escape(old), new, old) for old, new, _ in _RENAMES], drop=('mask_token',))
    kernel = converted[PATCH_KERNEL]
    converted[PATCH_KERNEL] = resample_patch_embed_kernel(kernel, patch_size, method)
    notes = [resample_note(kernel, converted[PATCH_KERNEL], method)] + notes_for(counts, {
        'unchunk': 'unchunked blocks.<chunk>.<i>.* -> blocks.<i>.* ({n} tensors)',
        **{old: f'renamed blocks.*.{old.rstrip(".")} -> blocks.*.{new.rstrip(".")} '
                f'({why}; {{n}} tensors)' for old, new, why in _RENAMES},
        'mask_token': 'dropped mask_token (used only by masked-image pretraining)'})
    if 'register_tokens' in converted:
        notes.append(f'kept register_tokens {tuple(converted["register_tokens"].shape)}: a '
                     'ViT-Adapter without register tokens will not use them')
    return converted, notes
