"""Load a DINOv2 / DINOv3 / ViT-Adapter checkpoint file into a backbone: read, detect and convert,
compare, then refuse with the fix or load and log a report."""
import re

from mmengine.logging import MMLogger

from .compare import compare_state_dict
from .convert.dinov2 import (DETECTOR_PREFIX, PATCH_KERNEL, convert_dinov2, detect_format,
                             resample_note, resample_patch_embed_kernel, strip_prefix)
from .convert.dinov3 import (DINOV3_FORMATS, convert_dinov3, convert_dinov3_adapter,
                             convert_dinov3_timm, dinov3_variant, fill_timm_gaps)
from .io import CheckpointError, load_state_dict_file

# Parameters of the plain ViT: a DINOv2 / DINOv3 file must provide all those the model has.
VIT_PREFIXES = ('patch_embed.', 'pos_embed', 'blocks.', 'cls_token', 'register_tokens',
                'rope_embed.', 'norm.')
VARIANTS = {384: 'ViT-S', 768: 'ViT-B', 1024: 'ViT-L', 1536: 'ViT-g'}
# Checkpoint entries the ViTAdapter has no parameter for, and why.
UNUSED_REASONS = {
    'cls_token': 'the ViT-Adapter uses patch tokens only, it has no class token',
    'norm.': "DINOv2's final LayerNorm is unused: the adapter's norm1..norm4 normalise its outputs",
    'register_tokens': "the model has no register tokens: the checkpoint's register tokens are "
                       'DROPPED, and features of a reg4 ViT computed without them differ from its '
                       'pretraining',
    'mask_token': 'used only by masked-image pretraining', 'head.': 'classification head',
    'local_cls_norm.': 'normalises the class / storage tokens of local crops in pretraining only; '
                       'never used in eval',
    'cls_norm.': 'normalises class / storage tokens only; the adapter reads patch tokens'}
_CONVERTERS = {'dinov3': ('official DINOv3', convert_dinov3),
               'dinov3_timm': ("timm's DINOv3", convert_dinov3_timm),
               'dinov3_adapter': ('official DINOv3_Adapter with a DINOv3', convert_dinov3_adapter)}


def load_backbone_weights(model, path, *, trust=False, logger=None, method='bilinear'):
    """Load a DINOv2 / DINOv3 / converted / ViT-Adapter checkpoint file into a ViT(-Adapter)
    backbone: read safely, converted, every shared shape checked, the rest loaded with
    ``strict=False``, and a report logged (conversions, what the file lacks, what it has unused).

    Args:
        model (nn.Module): the backbone, with the ViTAdapter's parameter names.
        trust (bool): allow a pickle that needs globals outside the allow-list.
        logger (logging.Logger, optional): default mmengine's current MMLogger.
        method (str): how a patch kernel of another size is resized
            (:func:`~.convert.dinov2.resample_patch_embed_kernel`).

    Returns:
        dict: ``path``, ``format``, ``notes`` (conversions), ``loaded`` (keys), ``missing`` (model
        keys absent from the file, by prefix), ``unused`` (file key -> reason), ``dim`` (width).

    Raises:
        ValueError: a shape differs, the file is no DINOv2/DINOv3/ViT-Adapter checkpoint, is for
            another config or lacks ViT parameters the model has.
        CheckpointError: unreadable, or a tensor to load holds NaN/inf or integers/booleans.
    """
    state_dict = load_state_dict_file(path, trust=trust)
    try:
        fmt = detect_format(state_dict)
    except ValueError as err:
        raise ValueError(f'{path}: {err}') from None
    model_state = model.state_dict()
    if PATCH_KERNEL not in model_state:
        raise ValueError(f'the model has no {PATCH_KERNEL}: load_backbone_weights expects a '
                         f'ViT/ViT-Adapter backbone, got {type(model).__name__}')
    notes = []
    if fmt == 'vit_adapter_detector':
        state_dict = strip_prefix(state_dict, DETECTOR_PREFIX)
        notes.append(f'took the backbone from a detector checkpoint (stripped {DETECTOR_PREFIX!r})')
    _check_family(path, fmt, state_dict, model_state)
    state_dict, conversion = _convert(path, fmt, state_dict, model_state, method)
    notes += conversion

    found = compare_state_dict(model_state, state_dict)
    if found.mismatched:
        raise ValueError(_shape_message(path, found.mismatched, state_dict, model_state))
    missing_vit = [key for key in found.missing if key.startswith(VIT_PREFIXES)]
    if missing_vit:
        depth, model_depth = _depth(state_dict), _depth(model_state)
        cause = (f'the checkpoint has {depth} blocks, the model {model_depth}'
                 if depth < model_depth else
                 'the checkpoint lacks parameters the model has (e.g. layer scale gamma1/gamma2)')
        raise ValueError(f'{path} ({fmt}) lacks {len(missing_vit)} ViT parameters of the model, '
                         f'e.g. {missing_vit[:5]}: {cause}')
    if found.broken:
        raise CheckpointError(f'{path}: {"; ".join(found.problems(broken_only=True))}. '
                              + found.broken_advice())
    model.load_state_dict({key: state_dict[key] for key in found.loaded}, strict=False)

    missing, unused = {}, {}  # {'spm': [...], ...}, {reason: [...]}
    for key in found.missing:
        missing.setdefault(key.split('.')[0], []).append(key)
    report = dict(path=str(path), format=fmt, notes=notes, loaded=sorted(found.loaded),
                  missing=missing, dim=int(state_dict[PATCH_KERNEL].shape[0]),
                  unused={key: _unused_reason(key) for key in found.unexpected})
    lines = [f'loaded {path} (format {fmt}): {len(found.loaded)}/{found.total} model tensors']
    lines += [f'  converted: {note}' for note in notes]
    if missing:
        why = ('expected: the adapter is not part of DINOv2 / DINOv3 and keeps its initialisation'
               if fmt.startswith(('dinov2', 'dinov3')) else 'they keep their initialisation')
        lines.append(f'  missing in the file ({why}): '
                     + ', '.join(f'{head} ({len(keys)})' for head, keys in missing.items()))
    for key, reason in report['unused'].items():
        unused.setdefault(reason, []).append(key)
    lines += [f'  unused: {", ".join(keys[:4])}'
              + (f', ... ({len(keys)} in all)' if len(keys) > 4 else '') + f': {reason}'
              for reason, keys in unused.items()]
    (logger or MMLogger.get_current_instance()).info('\n'.join(lines))
    return report


def _convert(path, fmt, state_dict, model_state, method):
    """The file's ViT in the model's names and patch size, and one note per change."""
    patch_size = tuple(model_state[PATCH_KERNEL].shape[-2:])
    if fmt == 'dinov2':
        return convert_dinov2(state_dict, patch_size, method)
    if fmt in DINOV3_FORMATS:
        what, convert = _CONVERTERS[fmt]
        notes = [f'{what} {dinov3_variant(state_dict)} file']
        state_dict, conversion = convert(state_dict)
        notes += conversion + (fill_timm_gaps(state_dict, model_state) if fmt == 'dinov3_timm'
                               else [])
        kernel = tuple(state_dict[PATCH_KERNEL].shape[-2:])
        if kernel != patch_size:
            raise ValueError(f'{path}: a DINOv3 patch kernel of {kernel} but the model has patch '
                             f'{patch_size}: DINOv3 ViTs run at patch 16 as trained')
        return state_dict, notes
    kernel = state_dict[PATCH_KERNEL]
    if tuple(kernel.shape[-2:]) == patch_size:
        return state_dict, []
    new = resample_patch_embed_kernel(kernel, patch_size, method)
    return {**state_dict, PATCH_KERNEL: new}, [
        f'{resample_note(kernel, new, method)}: the checkpoint was made for another patch size']


def config_to_use(family, dim):
    """The detector config for a backbone family (``'dinov2'``, ``'dinov2_reg4'``, ``'dinov3'``)
    and width, by the configs' naming rule: 'a ViT-B config such as
    mask-rcnn_dinov2-adapter-b_fpn_3x_coco.py'."""
    variant = VARIANTS.get(int(dim))
    size = variant[-1].lower() if variant else '*'
    name = f'mask-rcnn_{family.replace("_", "-")}-adapter-{size}_fpn_3x_coco.py'
    if variant is None:
        return f'a {name} config with the backbone widened to embed_dim={int(dim)}'
    return f'a {variant} config such as {name}'


def _check_family(path, fmt, state_dict, model_state):
    """A DINOv3 file into a DINOv2 model and back, a file without registers into a model with them
    and back: a ValueError naming the file and the config to use."""
    dim = (state_dict.get(PATCH_KERNEL) if PATCH_KERNEL in state_dict
           else state_dict[DETECTOR_PREFIX + PATCH_KERNEL]).shape[0]
    file_rope = fmt in DINOV3_FORMATS or 'rope_embed.periods' in state_dict
    model_rope = 'rope_embed.periods' in model_state
    if file_rope and not model_rope:
        what = (f'a DINOv3 {dinov3_variant(state_dict)}' if fmt in DINOV3_FORMATS
                else 'a DINOv3-style')
        raise ValueError(f'{path} is {what} checkpoint (RoPE positions, class and storage tokens) '
                         'but the model is a DINOv2-style ViT (absolute position embedding): use '
                         f'{config_to_use("dinov3", dim)}')
    if model_rope and not file_rope:
        family = 'dinov2_reg4' if 'register_tokens' in state_dict else 'dinov2'
        raise ValueError(f'{path} is a DINOv2 checkpoint (absolute position embedding) but the '
                         f'model is a DINOv3 ViT (RoPE): use {config_to_use(family, dim)}')
    masked = [key for key in state_dict if key.endswith('attn.qkv.bias_mask')]
    if masked and masked[0].replace(DETECTOR_PREFIX, '', 1) not in model_state:
        raise ValueError(f'{path} masks the k bias of its qkv projections ({masked[0]}) but the '
                         'model does not: its k bias would be added unmasked. Build the ViT with '
                         f'mask_k_bias=True, as {config_to_use("dinov3", dim)} does')
    if 'register_tokens' in state_dict and 'register_tokens' not in model_state and not model_rope:
        raise ValueError(f'{path} is a DINOv2 *_reg4 checkpoint: its ViT was trained with '
                         f'{state_dict["register_tokens"].shape[1]} register tokens, which this '
                         'model does not have (its features would differ from the pretrained '
                         f'ones): use {config_to_use("dinov2_reg4", dim)}, or the file without '
                         'registers')
    if 'register_tokens' in model_state and not any(key in state_dict for key in (
            'register_tokens', 'storage_tokens', 'reg_token', DETECTOR_PREFIX + 'storage_tokens')):
        raise ValueError(f'{path} has no register tokens but the model carries '
                         f'{model_state["register_tokens"].shape[1]} (num_register_tokens): use '
                         f'the *_reg4 file, or {config_to_use("dinov2", dim)} for this one')


def _shape_message(path, mismatched, state_dict, model_state):
    """The mismatched shapes, and the likely cause (from the first)."""
    key = next(iter(mismatched))
    ckpt_dim, model_dim = state_dict[PATCH_KERNEL].shape[0], model_state[PATCH_KERNEL].shape[0]
    if ckpt_dim != model_dim:
        ckpt, model = (VARIANTS.get(int(d), f'ViT with dim {d}') for d in (ckpt_dim, model_dim))
        cause = (f'{ckpt} weights (dim {ckpt_dim}) into a {model} model (dim {model_dim}): pick '
                 'the config that matches the checkpoint')
    elif key == 'pos_embed':
        ckpt, model = (round((sd[key].shape[1] - 1) ** 0.5) for sd in (state_dict, model_state))
        cause = (f'a {ckpt}x{ckpt} position grid in the checkpoint, {model}x{model} in the model: '
                 f'build the model with pretrain_size = {ckpt} * patch_size (592 for DINOv2 at '
                 'patch 16)')
    else:
        cause = ('a different MLP: SwiGLU (ViT-g) against a plain MLP, or another mlp_ratio'
                 if '.mlp.' in key else 'a different number of input channels'
                 if key == PATCH_KERNEL else 'the checkpoint was made for another architecture')
    lines = [f'  {key}: checkpoint {ckpt}, model {model}\n'
             for key, (ckpt, model) in list(mismatched.items())[:5]]
    more = f'  ... and {len(mismatched) - 5} more\n' if len(mismatched) > 5 else ''
    return (f'{path}: {len(mismatched)} tensors have the wrong shape for this model:\n'
            + ''.join(lines) + more + f'Likely cause: {cause}')


def _depth(state_dict):
    return 1 + max((int(m.group(1)) for key in state_dict
                    if (m := re.match(r'blocks\.(\d+)\.', key))), default=-1)


def _unused_reason(key):
    return next((reason for prefix, reason in UNUSED_REASONS.items() if key.startswith(prefix)),
                'a block beyond the model depth' if re.match(r'blocks\.\d+\.', key)
                else 'not a parameter of this model')
