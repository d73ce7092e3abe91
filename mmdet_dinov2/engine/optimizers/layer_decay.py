"""Layer-wise learning-rate decay for a ViT backbone (BEiT, arXiv:2106.08254, Sec. 3.3).

Each parameter gets a layer id: the embeddings are layer 0, ``backbone.blocks.i`` is layer i + 1,
everything else (the adapter, neck and heads) is layer ``num_layers + 1``. A parameter of layer
``l`` trains with ``lr * layer_decay_rate ** (num_layers + 1 - l)``, so the heads keep the base
learning rate and the patch embedding gets the smallest.

Weight decay follows the original ViT-Adapter constructor exactly: 1-D tensors (norms, biases,
layer-scale gammas) and names ending in ``.bias`` get none, every other tensor gets the optimizer's
``weight_decay``. The original also listed ``pos_embed``/``cls_token`` for no decay, but compared them
with prefixed names (``backbone.pos_embed``), so that test never matched: the position embedding
(3-D) and the adapter's ``level_embed`` (2-D) DO get weight decay. This is reproduced on purpose.
"""
from collections import OrderedDict

from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor

from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS

# Names the original puts in layer 0: exact names, then prefixes.
EMBEDDING_NAMES = ('backbone.cls_token', 'backbone.mask_token', 'backbone.pos_embed',
                   'backbone.visual_embed')
EMBEDDING_PREFIXES = ('backbone.patch_embed', 'backbone.visual_embed')
BLOCK_PREFIXES = ('backbone.blocks.', 'backbone.layers.')
PARAMWISE_KEYS = ('num_layers', 'layer_decay_rate')


def get_layer_id(name, num_layers):
    """The layer id of a parameter of the detector, from its name.

    Args:
        name (str): the parameter's name in the detector, e.g. ``backbone.blocks.3.attn.qkv.weight``.
        num_layers (int): the number of ViT blocks.

    Returns:
        int: 0 for the embeddings, i + 1 for ViT block i, ``num_layers + 1`` for the rest.
    """
    if name in EMBEDDING_NAMES or name.startswith(EMBEDDING_PREFIXES):
        return 0
    if name.startswith(BLOCK_PREFIXES):
        return int(name.split('.')[2]) + 1
    return num_layers + 1


def has_weight_decay(name, param):
    """Whether the original constructor applies weight decay to this parameter."""
    return param.ndim > 1 and not name.endswith('.bias')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Builds an optimizer wrapper whose parameter groups follow layer-wise lr decay.

    Used as ``optim_wrapper = dict(constructor='LayerDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.7))``. One parameter group is made per
    (layer id, decay or not); each group's ``lr`` is already scaled, and mmengine's parameter
    schedulers scale every group's own lr (warm-up and steps keep the ratios between layers).
    Frozen parameters (``requires_grad=False``) are left out.

    Args:
        optim_wrapper_cfg (dict): the ``optim_wrapper`` config; ``optimizer`` must set ``lr`` and
            ``weight_decay``.
        paramwise_cfg (dict): ``num_layers`` (int, the number of ViT blocks) and
            ``layer_decay_rate`` (float in (0, 1]).
    """

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        cfg = self.paramwise_cfg or {}
        unknown = sorted(set(cfg) - set(PARAMWISE_KEYS))
        missing = [key for key in PARAMWISE_KEYS if key not in cfg]
        if unknown or missing:
            raise ValueError(
                f'LayerDecayOptimizerConstructor: paramwise_cfg takes exactly {PARAMWISE_KEYS}; '
                f'got unknown keys {unknown} and is missing {missing} (paramwise_cfg={cfg})')
        self.num_layers = int(cfg['num_layers'])
        self.layer_decay_rate = float(cfg['layer_decay_rate'])
        if self.num_layers < 1 or not 0 < self.layer_decay_rate <= 1:
            raise ValueError(
                'LayerDecayOptimizerConstructor: need num_layers >= 1 and 0 < layer_decay_rate '
                f'<= 1, got num_layers={self.num_layers}, layer_decay_rate={self.layer_decay_rate}')
        if self.base_lr is None or self.base_wd is None:
            raise ValueError(
                'LayerDecayOptimizerConstructor: optim_wrapper.optimizer must set lr and '
                f'weight_decay, got {dict(self.optimizer_cfg)}')

    def lr_scale(self, layer_id):
        """The factor on the base lr for parameters of layer ``layer_id``."""
        return self.layer_decay_rate ** (self.num_layers + 1 - layer_id)

    def add_params(self, params, module, **kwargs):
        """Append one parameter group per (layer id, decay or not) to ``params``.

        Args:
            params (list[dict]): the parameter groups, extended in place.
            module (nn.Module): the detector (parameter names start with ``backbone.``).
        """
        groups = OrderedDict()
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            layer_id = get_layer_id(name, self.num_layers)
            decay = has_weight_decay(name, param)
            key = (layer_id, decay)
            if key not in groups:
                scale = self.lr_scale(layer_id)
                groups[key] = dict(params=[], lr=self.base_lr * scale,
                                   weight_decay=self.base_wd if decay else 0.0,
                                   lr_scale=scale, layer_id=layer_id)
            groups[key]['params'].append(param)
        params.extend(groups.values())
        self._log_groups(groups)

    def _log_groups(self, groups):
        lines = [f'LayerDecayOptimizerConstructor: num_layers={self.num_layers}, '
                 f'layer_decay_rate={self.layer_decay_rate}, base lr={self.base_lr}, '
                 f'weight_decay={self.base_wd}',
                 f'{"layer":>5} {"lr scale":>10} {"weight decay":>12} {"#params":>12} '
                 f'{"#tensors":>8}']
        for (layer_id, _), group in sorted(groups.items()):
            num_params = sum(p.numel() for p in group['params'])
            lines.append(f'{layer_id:>5} {group["lr_scale"]:>10.3e} {group["weight_decay"]:>12g} '
                         f'{num_params:>12,} {len(group["params"]):>8}')
        MMLogger.get_current_instance().info('\n'.join(lines))
