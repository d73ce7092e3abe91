"""Checks between parts of a detector config that no single module can make.

A backbone cannot see the neck it feeds, so a mismatch between the two shows up only inside the
neck (mmdet's FPN: a bare ``assert len(in_channels) == len(inputs)`` or a conv shape error).
:func:`check_backbone_neck` names both config keys before anything is built.
"""
import inspect

from .backbones.arguments import check_out_indices
from .backbones.dinov3_adapter import DINOv3Adapter
from .backbones.vit_adapter import ViTAdapter

# backbones that return len(out_indices) maps of embed_dim channels each
_ADAPTERS = (ViTAdapter, DINOv3Adapter)


def _adapter_class(backbone_type):
    """The adapter class a ``type`` names ('ViTAdapter', 'mmdet.DINOv3Adapter', or a class), or None."""
    for cls in _ADAPTERS:
        if isinstance(backbone_type, type) and issubclass(backbone_type, cls):
            return cls
        if isinstance(backbone_type, str) and backbone_type.split('.')[-1] == cls.__name__:
            return cls
    return None


def _default(cls, argument: str):
    return inspect.signature(cls.__init__).parameters[argument].default


def check_backbone_neck(model_cfg) -> None:
    """Check that a ViTAdapter's (or DINOv3Adapter's) maps match the neck's ``in_channels``.

    The backbone returns ``len(out_indices)`` maps of ``embed_dim`` channels each; the neck must list
    one input of that width per map. Configs whose backbone is not a ViTAdapter, or whose neck has no
    ``in_channels``, are left alone.

    Args:
        model_cfg (dict): the ``model`` part of a config (a dict or mmengine ConfigDict).

    Raises:
        ValueError: naming ``model.backbone.out_indices`` / ``model.backbone.embed_dim`` and
            ``model.neck.in_channels``, their values and what would fit.
    """
    backbone = model_cfg.get('backbone') or {}
    neck = model_cfg.get('neck')
    cls = _adapter_class(backbone.get('type'))
    if cls is None or not isinstance(neck, dict) or 'in_channels' not in neck:
        return
    out_indices = backbone.get('out_indices', _default(cls, 'out_indices'))
    try:
        num_maps = len(check_out_indices(out_indices))
    except ValueError as err:
        raise ValueError(f'model.backbone.{err}') from None
    embed_dim = backbone.get('embed_dim', _default(cls, 'embed_dim'))
    in_channels = neck['in_channels']
    fix = f'e.g. model.neck.in_channels=[{embed_dim}] * {num_maps}'
    if not isinstance(in_channels, (list, tuple)):
        raise ValueError(f'model.neck.in_channels={in_channels!r} must list one width per backbone map: '
                         f'model.backbone.out_indices={out_indices!r} gives {num_maps} maps of '
                         f'model.backbone.embed_dim={embed_dim} channels ({fix})')
    problems = []
    if len(in_channels) != num_maps:
        problems.append(f'model.backbone.out_indices={out_indices!r} gives {num_maps} maps but '
                        f'model.neck.in_channels={in_channels!r} lists {len(in_channels)} inputs')
    wrong = [c for c in in_channels if c != embed_dim]
    if wrong:
        problems.append(f'model.neck.in_channels={in_channels!r} has widths {wrong} but every map has '
                        f'model.backbone.embed_dim={embed_dim} channels')
    if problems:
        raise ValueError(f'the {cls.__name__} backbone does not fit the neck: ' + '; '.join(problems)
                         + f' ({fix})')
