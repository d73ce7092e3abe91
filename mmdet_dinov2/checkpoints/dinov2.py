"""Official DINOv2 and ViT-Adapter state dicts -> the ViTAdapter backbone's parameter names.

DINOv3 files (official and timm's) are converted by :mod:`.dinov3`; format detection and the
reporting loader here cover every family.

The pure functions here take and return state dicts (no files); :func:`load_backbone_weights`
ties them to a file and a model, checks every shape and reports what it did.

Official DINOv2 hub files (``dinov2_vit{s,b,l,g}14[_reg4]_pretrain.pth``) hold ``cls_token``
(1, 1, D), ``pos_embed`` (1, 1 + 37 * 37, D), ``mask_token`` (1, D), ``register_tokens``
(1, 4, D) for reg4, ``patch_embed.proj`` with a 14x14 kernel, ``blocks.N.{norm1, attn.qkv,
attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2 | mlp.w12, mlp.w3 (ViT-g, SwiGLU), ls2.gamma}`` and
the final ``norm``. Converting them follows the original ViT-Adapter's ``convert_14to16.py``: the
14x14 kernel is resized to 16x16, ``ls1/ls2.gamma`` become ``gamma1/gamma2``, ``mask_token`` is
dropped; the SwiGLU weights take timm's ``GluMlp`` names ``mlp.fc1/fc2``.
"""
import re
from collections import Counter, defaultdict

import torch.nn.functional as F
from mmengine.logging import MMLogger

from .compare import non_finite_tensors
from .dinov3 import (DINOV3_FORMATS, UNUSED_REASONS as DINOV3_UNUSED_REASONS, convert_dinov3,
                     convert_dinov3_adapter, convert_dinov3_timm, dinov3_variant, is_dinov3,
                     is_dinov3_adapter, is_dinov3_convnext, is_dinov3_timm)
from .io import CheckpointError, load_state_dict_file

__all__ = ['RESAMPLE_METHODS', 'config_to_use', 'detect_format', 'convert_dinov2', 'strip_prefix',
           'resample_patch_embed_kernel', 'load_backbone_weights']

RESAMPLE_METHODS = ('bilinear', 'pinv')
DETECTOR_PREFIX = 'backbone.'
PATCH_KERNEL = 'patch_embed.proj.weight'
# Parameters of the plain ViT: a DINOv2 / DINOv3 file must provide all those the model has.
VIT_PREFIXES = ('patch_embed.', 'pos_embed', 'blocks.', 'cls_token', 'register_tokens', 'rope_embed.',
                'norm.')
# The detector configs per backbone family and width, named in errors.
CONFIGS = {'dinov2': ('configs/vit_adapter/mask-rcnn_dinov2-adapter-{}_fpn_3x_coco.py',
                      {384: 's', 768: 'b', 1024: 'l', 1536: 'g'}),
           'dinov2_reg4': ('configs/vit_adapter/mask-rcnn_dinov2-reg4-adapter-{}_fpn_3x_coco.py',
                           {384: 's', 768: 'b', 1024: 'l', 1536: 'g'}),
           'dinov3': ('configs/vit_adapter/mask-rcnn_dinov3-adapter-{}_fpn_3x_coco.py',
                      {384: 's', 768: 'b', 1024: 'l'})}
ADAPTER_PREFIXES = ('level_embed', 'spm.', 'interactions.', 'up.', 'norm1.', 'norm2.', 'norm3.',
                    'norm4.')
VARIANTS = {384: 'ViT-S', 768: 'ViT-B', 1024: 'ViT-L', 1536: 'ViT-g'}

# Names only DINOv2's own code uses (timm/ViT-Adapter call them gamma1/2, fc1/fc2).
_DINOV2_ONLY = re.compile(r'\.ls[12]\.gamma$|\.mlp\.w(12|3)\.')
# DINOv2 with block_chunks > 0 nests blocks as blocks.<chunk>.<index>.
_CHUNKED_BLOCK = re.compile(r'^blocks\.\d+\.(\d+)\.')
# (DINOv2 name, our name, why), applied with str.replace as the original converter does.
_RENAMES = (
    ('ls1.gamma', 'gamma1', 'layer scale'),
    ('ls2.gamma', 'gamma2', 'layer scale'),
    ('mlp.w12.', 'mlp.fc1.', "SwiGLU input projection (timm GluMlp's name)"),
    ('mlp.w3.', 'mlp.fc2.', "SwiGLU output projection (timm GluMlp's name)"),
)
# Checkpoint entries the ViTAdapter has no parameter for, and why.
_UNUSED_REASONS = (
    ('cls_token', 'the ViT-Adapter uses patch tokens only, it has no class token'),
    ('norm.', "DINOv2's final LayerNorm is not used: the adapter's norm1..norm4 normalise "
              'its outputs'),
    ('register_tokens', 'the model has no register tokens: the checkpoint\'s register tokens are '
                        'DROPPED, and features of a reg4 ViT computed without them differ from '
                        'its pretraining'),
    ('mask_token', 'used only by masked-image pretraining'),
    ('head.', 'classification head'),
    *DINOV3_UNUSED_REASONS[1:],
)


def detect_format(state_dict):
    """Name the layout of a state dict.

    Returns:
        str: ``'dinov2'`` (an official DINOv2 file, 14x14 kernel, ``ls1.gamma``), ``'dinov3'``
        (an official DINOv3 ViT file: ``storage_tokens``, ``rope_embed.periods``), ``'dinov3_timm'``
        (timm's ``vit_*_patch16_dinov3``), ``'dinov3_adapter'`` (the official DINOv3_Adapter:
        ViT under ``backbone.``, adapter beside it), ``'dinov2_converted'`` (a plain ViT in the ViTAdapter's
        names, e.g. the output of ``tools/convert_14to16.py``), ``'vit_adapter_detector'`` (a whole detector, backbone
        under ``backbone.``) or ``'vit_adapter_backbone'`` (ViT + adapter).

    Raises:
        ValueError: the state dict is no DINOv2/DINOv3/ViT-Adapter checkpoint (e.g. a ResNet, or
            DINOv3's ConvNeXt).
    """
    keys = list(state_dict)
    if is_dinov3_adapter(state_dict):
        return 'dinov3_adapter'
    if any(key.startswith(DETECTOR_PREFIX) for key in keys):
        if DETECTOR_PREFIX + PATCH_KERNEL in state_dict:
            return 'vit_adapter_detector'
        _raise_not_vit(keys, 'its backbone.* ')
    if is_dinov3_convnext(state_dict):
        raise ValueError(
            'this is a ConvNeXt checkpoint (downsample_layers.*, stages.*), e.g. DINOv3\'s '
            'dinov3_convnext_*_pretrain_*.pth: ViT-Adapter needs a ViT. Use a DINOv3 ViT file '
            '(dinov3_vit*16_pretrain_*.pth) with configs/vit_adapter/mask-rcnn_dinov3-adapter-'
            '{s,b,l}_fpn_3x_coco.py')
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
        weight (Tensor): the kernel, (D, C, k, k).
        patch_size (int | tuple[int, int]): the new kernel size p.
        method (str): ``'bilinear'``: ``F.interpolate`` (bilinear, ``align_corners=False``) as the
            original ViT-Adapter does; ``'pinv'``: FlexiViT's pseudo-inverse resize (timm's
            ``resample_patch_embed``), which keeps the patch embedding of a bilinearly upsampled
            image equal to the old kernel's on the original image.
    """
    size = _pair(patch_size)
    if method not in RESAMPLE_METHODS:
        raise ValueError(f'unknown resampling method {method!r}; use one of {RESAMPLE_METHODS}')
    if weight.ndim != 4:
        raise ValueError(f'{PATCH_KERNEL} must be 4-D (D, C, k, k), got {tuple(weight.shape)}')
    if tuple(weight.shape[-2:]) == size:
        return weight
    if method == 'bilinear':
        return F.interpolate(weight, size=size, mode='bilinear', align_corners=False)
    from timm.layers import resample_patch_embed
    return resample_patch_embed(weight, list(size), interpolation='bilinear', antialias=False)


def convert_dinov2(state_dict, patch_size=16, method='bilinear'):
    """Convert an official DINOv2 state dict to the ViTAdapter's names and patch size.

    Args:
        state_dict (dict): an official DINOv2 state dict (S/B/L/g, with or without registers).
        patch_size (int): the model's patch size; the 14x14 kernel is resized to it.
        method (str): how the kernel is resized, see :func:`resample_patch_embed_kernel`.

    Returns:
        tuple[dict, list[str]]: the converted state dict and one line per conversion applied.
        ``cls_token``, ``norm.*`` and ``register_tokens`` are kept (the original converter keeps
        them); :func:`load_backbone_weights` reports them as unused.
    """
    fmt = detect_format(state_dict)
    if fmt != 'dinov2':
        hint = ('already converted (no ls1.gamma / mask_token / mlp.w12)'
                if fmt == 'dinov2_converted' else f'a {fmt} checkpoint')
        raise ValueError(f'convert_dinov2 expects an official DINOv2 state dict; this one is {hint}')
    converted, counts = {}, Counter()
    for key, value in state_dict.items():
        if key == 'mask_token':
            counts['mask_token'] += 1
            continue
        new_key = _CHUNKED_BLOCK.sub(r'blocks.\1.', key)
        counts['unchunk'] += new_key != key
        for old, new, _ in _RENAMES:
            if old in new_key:
                new_key = new_key.replace(old, new)
                counts[old] += 1
        converted[new_key] = value

    notes = []
    kernel = converted[PATCH_KERNEL]
    converted[PATCH_KERNEL] = resample_patch_embed_kernel(kernel, patch_size, method)
    notes.append(_resample_note(kernel, converted[PATCH_KERNEL], method))
    if counts['unchunk']:
        notes.append(f'unchunked blocks.<chunk>.<i>.* -> blocks.<i>.* ({counts["unchunk"]} tensors)')
    for old, new, why in _RENAMES:
        if counts[old]:
            notes.append(f'renamed blocks.*.{old.rstrip(".")} -> blocks.*.{new.rstrip(".")} '
                         f'({why}; {counts[old]} tensors)')
    if counts['mask_token']:
        notes.append('dropped mask_token (used only by masked-image pretraining)')
    if 'register_tokens' in converted:
        notes.append(f'kept register_tokens {tuple(converted["register_tokens"].shape)}: a '
                     'ViT-Adapter without register tokens will not use them')
    return converted, notes


def _resample_note(old, new, method):
    old_size, new_size = 'x'.join(map(str, old.shape[-2:])), 'x'.join(map(str, new.shape[-2:]))
    if old_size == new_size:
        return f'{PATCH_KERNEL} already {new_size}: kept'
    return f'resampled {PATCH_KERNEL} {old_size} -> {new_size} ({method})'


def _pair(size):
    return (size, size) if isinstance(size, int) else tuple(size)


def load_backbone_weights(model, path, *, trust=False, logger=None, method='bilinear'):
    """Load a DINOv2 / converted / ViT-Adapter checkpoint file into a ViTAdapter backbone.

    The file is read safely (:func:`~.io.load_state_dict_file`), its format detected, official
    DINOv2 weights converted (kernel resized to the model's patch size), every shared tensor's
    shape checked, and the rest loaded with ``strict=False``; a report says what was converted,
    which model parameters the file lacks and which of its entries are unused, and why.

    Args:
        model (nn.Module): the backbone, with the ViTAdapter's parameter names.
        path (str | Path): the checkpoint file.
        trust (bool): allow a pickle that needs globals outside the safe allow-list.
        logger (logging.Logger, optional): where the report goes; mmengine's current MMLogger
            by default.
        method (str): how a patch kernel of another size is resized, see
            :func:`resample_patch_embed_kernel`.

    Returns:
        dict: ``path``, ``format``, ``notes`` (conversions), ``loaded`` (keys), ``missing``
        (model keys absent from the file, grouped by prefix), ``unused`` (file key -> reason).

    Raises:
        ValueError: a shape differs (e.g. ViT-S weights into a ViT-B model), the file is no
            DINOv2/ViT-Adapter checkpoint, or it lacks ViT parameters the model has.
    """
    logger = logger or MMLogger.get_current_instance()
    state_dict = load_state_dict_file(path, trust=trust)
    try:
        fmt = detect_format(state_dict)
    except ValueError as err:
        raise ValueError(f'{path}: {err}') from None
    notes = []
    if fmt == 'vit_adapter_detector':
        state_dict = strip_prefix(state_dict, DETECTOR_PREFIX)
        notes.append(f'took the backbone from a detector checkpoint (stripped {DETECTOR_PREFIX!r})')
    model_state = model.state_dict()
    if PATCH_KERNEL not in model_state:
        raise ValueError(f'the model has no {PATCH_KERNEL}: load_backbone_weights expects a '
                         f'ViT/ViT-Adapter backbone, got {type(model).__name__}')
    _check_family(path, fmt, state_dict, model_state)
    patch_size = tuple(model_state[PATCH_KERNEL].shape[-2:])
    if fmt == 'dinov2':
        state_dict, conversion = convert_dinov2(state_dict, patch_size, method)
        notes += conversion
    elif fmt in DINOV3_FORMATS:
        convert = dict(dinov3=convert_dinov3, dinov3_timm=convert_dinov3_timm,
                       dinov3_adapter=convert_dinov3_adapter)[fmt]
        what = dict(dinov3='official DINOv3', dinov3_timm="timm's DINOv3",
                    dinov3_adapter='official DINOv3_Adapter with a DINOv3')[fmt]
        notes.append(f'{what} {dinov3_variant(state_dict)} file')
        state_dict, conversion = convert(state_dict)
        notes += conversion
        if fmt == 'dinov3_timm':
            notes += _fill_from_model(state_dict, model_state)
        if tuple(state_dict[PATCH_KERNEL].shape[-2:]) != patch_size:
            raise ValueError(f'{path}: a DINOv3 patch kernel of {tuple(state_dict[PATCH_KERNEL].shape[-2:])} '
                             f'but the model has patch {patch_size}: DINOv3 ViTs run at patch 16 as trained')
    elif tuple(state_dict[PATCH_KERNEL].shape[-2:]) != patch_size:
        kernel = state_dict[PATCH_KERNEL]
        state_dict[PATCH_KERNEL] = resample_patch_embed_kernel(kernel, patch_size, method)
        notes.append(_resample_note(kernel, state_dict[PATCH_KERNEL], method) +
                     ': the checkpoint was made for another patch size')

    _check_shapes(state_dict, model_state, path)
    missing = [key for key in model_state if key not in state_dict]
    missing_vit = [key for key in missing if key.startswith(VIT_PREFIXES)]
    if missing_vit:
        raise ValueError(_missing_vit_message(path, fmt, missing_vit, state_dict, model_state))
    unused = {key: _unused_reason(key) for key in state_dict if key not in model_state}
    loadable = {key: value for key, value in state_dict.items() if key in model_state}
    non_finite = non_finite_tensors(loadable)
    if non_finite:
        shown = ', '.join(f'{key} ({count} values)' for key, count in list(non_finite.items())[:5])
        raise CheckpointError(f'{path}: {len(non_finite)} tensors hold NaN or inf: {shown}. The '
                              'file is damaged: download (and convert) it again')
    model.load_state_dict(loadable, strict=False)

    report = dict(path=str(path), format=fmt, notes=notes, loaded=sorted(loadable),
                  missing=_group_by_prefix(missing), unused=unused,
                  dim=int(state_dict[PATCH_KERNEL].shape[0]))
    _log_report(report, len(model_state), logger)
    return report


def config_to_use(family, dim):
    """The detector config for a backbone family and width, or what to do when there is none."""
    pattern, sizes = CONFIGS[family]
    if int(dim) in sizes:
        return pattern.format(sizes[int(dim)])
    return (pattern.format('{' + ','.join(sizes.values()) + '}') +
            f' with the backbone widened to embed_dim={int(dim)} (no config of that width yet)')


def _check_family(path, fmt, state_dict, model_state):
    """A DINOv3 file into a DINOv2 model and back, a file without registers into a model with them
    and back: a ValueError naming the file and the config to use."""
    dim = (state_dict.get(PATCH_KERNEL) if PATCH_KERNEL in state_dict
           else state_dict['backbone.' + PATCH_KERNEL]).shape[0]
    file_rope = fmt in DINOV3_FORMATS or 'rope_embed.periods' in state_dict
    model_rope = 'rope_embed.periods' in model_state
    if file_rope and not model_rope:
        what = f'a DINOv3 {dinov3_variant(state_dict)}' if fmt in DINOV3_FORMATS else 'a DINOv3-style'
        raise ValueError(f'{path} is {what} checkpoint (RoPE positions, class and storage tokens) but the '
                         f'model is a DINOv2-style ViT (absolute position embedding): use '
                         f'{config_to_use("dinov3", dim)}')
    if model_rope and not file_rope:
        family = 'dinov2_reg4' if 'register_tokens' in state_dict else 'dinov2'
        raise ValueError(f'{path} is a DINOv2 checkpoint (absolute position embedding) but the model is '
                         f'a DINOv3 ViT (RoPE): use {config_to_use(family, dim)}')
    masked = [key for key in state_dict if key.endswith('attn.qkv.bias_mask')]
    if masked and masked[0].replace('backbone.', '', 1) not in model_state:
        raise ValueError(f'{path} masks the k bias of its qkv projections ({masked[0]}) but the model does '
                         'not: its k bias would be added unmasked. Build the ViT with mask_k_bias=True '
                         f'(as {config_to_use("dinov3", dim)} does)')
    has_registers = any(key in state_dict for key in ('register_tokens', 'storage_tokens', 'reg_token',
                                                      'backbone.storage_tokens'))
    if 'register_tokens' in state_dict and 'register_tokens' not in model_state and not model_rope:
        raise ValueError(f'{path} is a DINOv2 *_reg4 checkpoint: its ViT was trained with '
                         f'{state_dict["register_tokens"].shape[1]} register tokens, which this model '
                         'does not have (its features would differ from the pretrained ones): use '
                         f'{config_to_use("dinov2_reg4", dim)}, or the file without registers')
    if 'register_tokens' in model_state and not has_registers:
        raise ValueError(f'{path} has no register tokens but the model carries '
                         f'{model_state["register_tokens"].shape[1]} (num_register_tokens): use the '
                         f'*_reg4 file, or {config_to_use("dinov2", dim)} for this one')


def _fill_from_model(state_dict, model_state):
    """timm's DINOv3 files lack the RoPE periods, the k-bias masks and (non-qkvb variants) the qkv
    bias: take the model's own periods and masks (what timm computes) and a zero bias, with notes."""
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
    notes = []
    if filled['periods']:
        notes.append("kept the model's rope_embed.periods (timm stores none; it computes the same "
                     'from base 100)')
    if filled['mask']:
        notes.append(f"kept the model's attn.qkv.bias_mask (k bias masked; {filled['mask']} blocks)")
    if filled['bias']:
        notes.append(f'set attn.qkv.bias to 0 ({filled["bias"]} blocks): the file has none (timm\'s '
                     'DINOv3 variant without qkv bias)')
    return notes


def _check_shapes(state_dict, model_state, path):
    mismatched = [key for key in state_dict if key in model_state
                  and state_dict[key].shape != model_state[key].shape]
    if not mismatched:
        return
    lines = [f'  {key}: checkpoint {tuple(state_dict[key].shape)}, model '
             f'{tuple(model_state[key].shape)}' for key in mismatched[:5]]
    more = f'  ... and {len(mismatched) - 5} more\n' if len(mismatched) > 5 else ''
    raise ValueError(f'{path}: {len(mismatched)} tensors have the wrong shape for this model:\n' +
                     '\n'.join(lines) + '\n' + more +
                     f'Likely cause: {_mismatch_cause(mismatched[0], state_dict, model_state)}')


def _mismatch_cause(key, state_dict, model_state):
    ckpt_dim, model_dim = state_dict[PATCH_KERNEL].shape[0], model_state[PATCH_KERNEL].shape[0]
    if ckpt_dim != model_dim:
        return (f'{_variant(ckpt_dim)} weights (dim {ckpt_dim}) into a {_variant(model_dim)} '
                f'model (dim {model_dim}): pick the config that matches the checkpoint')
    if key == 'pos_embed':
        ckpt_grid = round((state_dict[key].shape[1] - 1) ** 0.5)
        model_grid = round((model_state[key].shape[1] - 1) ** 0.5)
        return (f'a {ckpt_grid}x{ckpt_grid} position grid in the checkpoint, {model_grid}x'
                f'{model_grid} in the model: build the model with pretrain_size = {ckpt_grid} * '
                'patch_size (592 for DINOv2 at patch 16)')
    if '.mlp.' in key:
        return ('a different MLP: SwiGLU (ViT-g) against a plain MLP, or another mlp_ratio')
    if key == PATCH_KERNEL:
        return 'a different number of input channels'
    return 'the checkpoint was made for another architecture'


def _variant(dim):
    return VARIANTS.get(int(dim), f'ViT with dim {dim}')


def _missing_vit_message(path, fmt, missing_vit, state_dict, model_state):
    depth = _depth(state_dict)
    model_depth = _depth(model_state)
    cause = (f'the checkpoint has {depth} blocks, the model {model_depth}'
             if depth < model_depth else
             'the checkpoint lacks parameters the model has (e.g. layer scale gamma1/gamma2)')
    return (f'{path} ({fmt}) lacks {len(missing_vit)} ViT parameters of the model, e.g. '
            f'{missing_vit[:5]}: {cause}')


def _depth(state_dict):
    indices = {int(m.group(1)) for key in state_dict if (m := re.match(r'blocks\.(\d+)\.', key))}
    return max(indices) + 1 if indices else 0


def _unused_reason(key):
    for prefix, reason in _UNUSED_REASONS:
        if key.startswith(prefix):
            return reason
    if re.match(r'blocks\.\d+\.', key):
        return 'a block beyond the model depth'
    return 'not a parameter of this model'


def _group_by_prefix(keys):
    """{'spm': [...], 'interactions': [...], ...}: keys grouped by their first name."""
    groups = defaultdict(list)
    for key in keys:
        groups[key.split('.')[0]].append(key)
    return dict(groups)


def _log_report(report, num_model_tensors, logger):
    lines = [f'loaded {report["path"]} (format {report["format"]}): '
             f'{len(report["loaded"])}/{num_model_tensors} model tensors']
    lines += [f'  converted: {note}' for note in report['notes']]
    if report['missing']:
        groups = ', '.join(f'{head} ({len(keys)})' for head, keys in report['missing'].items())
        why = ('expected: the adapter is not part of DINOv2 / DINOv3 and keeps its initialisation'
               if report['format'].startswith(('dinov2', 'dinov3')) else 'they keep their initialisation')
        lines.append(f'  missing in the file ({why}): {groups}')
    by_reason = defaultdict(list)
    for key, reason in report['unused'].items():
        by_reason[reason].append(key)
    for reason, keys in by_reason.items():
        shown = ', '.join(keys[:4]) + (f', ... ({len(keys)} in all)' if len(keys) > 4 else '')
        lines.append(f'  unused: {shown}: {reason}')
    logger.info('\n'.join(lines))
