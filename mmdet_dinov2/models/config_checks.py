"""Checks between parts of a detector config that no single module can make.

A backbone cannot see the neck it feeds, so a mismatch between the two shows up only inside the
neck (mmdet's FPN: a bare ``assert len(in_channels) == len(inputs)`` or a conv shape error).
:func:`check_backbone_neck` names both config keys before anything is built.
"""
import inspect

from mmdet.registry import DATASETS
from torch.nn.modules.module import register_module_module_registration_hook

from .backbones.archs import expand_arch
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
    backbone = expand_arch(backbone, cls.__name__)
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



def _check_neck_on_registration(module, name, submodule):
    """A torch module-registration hook: when a detector whose backbone is an adapter gets its
    ``neck``, :func:`check_backbone_neck` on the built parts. So a model built by ``MODELS.build``,
    ``init_detector`` or a plain mmengine Runner is refused with the config keys named, not with
    the neck's bare ``AssertionError`` at its first forward."""
    backbone = getattr(module, 'backbone', None) if name == 'neck' else None
    in_channels = getattr(submodule, 'in_channels', None)
    if isinstance(backbone, _ADAPTERS) and isinstance(in_channels, (list, tuple)):
        check_backbone_neck(dict(backbone=dict(type=type(backbone), out_indices=backbone.out_indices,
                                               embed_dim=backbone.embed_dim),
                                 neck=dict(in_channels=list(in_channels))))


# global by torch's design (one hook for every module): it returns at once for other modules
register_module_module_registration_hook(_check_neck_on_registration)


def _head_num_classes(node, key):
    """``(config key, value)`` of every ``num_classes`` of a box or mask head under ``node``
    (the RPN's one class is objectness; other heads, e.g. a semantic head, count other things)."""
    if isinstance(node, (list, tuple)):
        return [found for i, item in enumerate(node)
                for found in _head_num_classes(item, f'{key}[{i}]')]
    if not isinstance(node, dict):
        return []
    is_head = key.split('.')[-1].split('[')[0] in ('bbox_head', 'mask_head')
    found = ([(f'{key}.num_classes', node['num_classes'])]
             if is_head and 'num_classes' in node else [])
    return found + [item for name, value in node.items()
                    for item in _head_num_classes(value, f'{key}.{name}')]


def _dataset_classes(cfg, split):
    """``(config key, classes)`` of a dataloader's dataset (through wrappers such as
    RepeatDataset), from its dataset class's METAINFO when the config lists none; or None."""
    dataset = (cfg.get(f'{split}_dataloader') or {}).get('dataset')
    key = f'{split}_dataloader.dataset'
    while isinstance(dataset, dict) and 'dataset' in dataset:
        dataset, key = dataset['dataset'], f'{key}.dataset'
    if not isinstance(dataset, dict):
        return None
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is not None:
        return f'{key}.metainfo.classes', classes
    cls = dataset.get('type')
    cls = DATASETS.get(cls) if isinstance(cls, str) else cls
    classes = getattr(cls, 'METAINFO', {}).get('classes')
    return None if classes is None else (f"{key} ({cls.__name__}'s METAINFO)", classes)


def check_num_classes(cfg) -> None:
    """Check that the box and mask heads' ``num_classes`` agree with each other and with the
    classes of every dataloader's dataset: a head with fewer classes trains the others as
    background, and a box head that disagrees with its mask head fails deep inside mmdet.

    Args:
        cfg (dict): a whole config (``model`` and the dataloaders).

    Raises:
        ValueError: naming both config keys and their values.
    """
    heads = _head_num_classes(cfg.get('model') or {}, 'model')
    if not heads:
        return
    key, num = heads[0]
    for other_key, other in heads[1:]:
        if other != num:
            raise ValueError(f'{key}={num!r} and {other_key}={other!r} disagree: give every box '
                             'and mask head the number of classes of the dataset')
    for split in ('train', 'val', 'test'):
        found = _dataset_classes(cfg, split)
        if found is not None and len(found[1]) != num:
            raise ValueError(
                f'{key}={num!r} but {found[0]} lists {len(found[1])} classes '
                f'{tuple(found[1])}: set num_classes={len(found[1])} in every box and mask head '
                f'({", ".join(k for k, _ in heads)}), or list the classes the model is for')
