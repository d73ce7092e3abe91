"""Layer-wise learning-rate decay for a ViT backbone (BEiT, arXiv:2106.08254, Sec. 3.3): a parameter
of layer ``l`` trains with ``lr * layer_decay_rate ** (num_layers + 1 - l)`` (:class:`LayerRule`).
Weight decay follows the original ViT-Adapter constructor exactly: none for 1-D tensors and names
ending in ``.bias``; its ``pos_embed``/``cls_token`` exemption compared prefixed names, so the
position embedding and ``level_embed`` DO get weight decay, reproduced here."""
from collections import OrderedDict

from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor

REQUIRED_KEYS = ('num_layers', 'layer_decay_rate')
RULE_KEYS = ('embedding_names', 'block_prefix', 'adapter_names')


def _listed(names, most=20):
    """The first ``most`` of ``names``, and how many more, for an error message."""
    return ', '.join(names[:most]) + (f' and {len(names) - most} more' if len(names) > most else '')


class LayerRule:
    """Which layer each parameter belongs to, by its name in the detector (a module or parameter
    name covers itself and everything inside it); the defaults are ViTAdapter's (the original's
    grouping). A backbone parameter no name covers is an error (its layer id would be a guess).

    Args:
        embedding_names (sequence[str]): layer 0 (embeddings, tokens, the RoPE periods buffer).
        block_prefix (str): the ViT's block list: ``{block_prefix}.{i}.*`` is layer i + 1.
        adapter_names (sequence[str]): backbone parts at layer num_layers + 1 with the neck and
            heads (the base lr), including the ViT's final ``norm``, which ViTAdapter does not use.
    """

    def __init__(self, embedding_names=('backbone.cls_token', 'backbone.mask_token',
                                        'backbone.pos_embed', 'backbone.patch_embed',
                                        'backbone.register_tokens', 'backbone.rope_embed'),
                 block_prefix='backbone.blocks',
                 adapter_names=('backbone.level_embed', 'backbone.spm', 'backbone.interactions',
                                'backbone.up', 'backbone.norm1', 'backbone.norm2', 'backbone.norm3',
                                'backbone.norm4', 'backbone.norm')):
        for key, value in (('embedding_names', embedding_names), ('adapter_names', adapter_names)):
            if isinstance(value, str) or not all(isinstance(n, str) for n in value):
                raise TypeError(f'LayerRule: {key}={value!r} must be a list of parameter or '
                                'module names')
        if not isinstance(block_prefix, str) or not block_prefix.strip('.'):
            raise TypeError(f'LayerRule: block_prefix={block_prefix!r} must be a module name '
                            "such as 'backbone.blocks'")
        self.embedding_names = tuple(n.rstrip('.') for n in embedding_names)
        self.block_prefix = block_prefix.rstrip('.')
        self.adapter_names = tuple(n.rstrip('.') for n in adapter_names)

    def __repr__(self):
        return (f'embedding_names={list(self.embedding_names)} (layer 0), block_prefix='
                f"'{self.block_prefix}' ('{self.block_prefix}.<i>.*' is layer i + 1), "
                f'adapter_names={list(self.adapter_names)} (layer num_layers + 1)')

    def block_index(self, name):
        if not name.startswith(self.block_prefix + '.'):
            return None
        index = name[len(self.block_prefix) + 1:].split('.')[0]
        return int(index) if index.isdigit() else None

    def layer_id(self, name, num_layers):
        """0 for the embeddings, i + 1 for block i, ``num_layers + 1`` for the adapter and
        everything outside the backbone; None for a backbone parameter the rule does not cover."""
        def covered(prefixes):
            return any(name == p or name.startswith(p + '.') for p in prefixes)
        if covered(self.embedding_names):
            return 0
        block = self.block_index(name)
        if block is not None:
            return block + 1
        if name.startswith('backbone.') and not covered(self.adapter_names):
            return None
        return num_layers + 1

    def check(self, names, num_layers):
        """A ValueError for uncovered backbone parameters or blocks other than 0..num_layers-1."""
        problems = []
        uncovered = [n for n in names if self.layer_id(n, num_layers) is None]
        if uncovered:
            problems.append(f'{len(uncovered)} backbone parameters fit no name of the layer rule, '
                            f'so their layer ids would be guesses: {_listed(uncovered)}')
        blocks = sorted({i for i in map(self.block_index, names) if i is not None})
        if blocks != list(range(num_layers)):
            found = (f'blocks {blocks[0]}..{blocks[-1]} ({len(blocks)} of them)' if blocks
                     else 'no block')
            problems.append(f"paramwise_cfg num_layers={num_layers} but '{self.block_prefix}' "
                            f'holds {found}; expected blocks 0..{num_layers - 1}')
        if problems:
            raise ValueError(
                'LayerDecayOptimizerConstructor: ' + '; '.join(problems) + f'. The rule: {self!r}. '
                f'Set paramwise_cfg keys {", ".join(RULE_KEYS)} to the backbone\'s names (e.g. '
                "block_prefix='backbone.vit.blocks' for a ViT kept as backbone.vit), and "
                'num_layers to its number of blocks')


DEFAULT_RULE = LayerRule()


def get_layer_id(name, num_layers, rule=DEFAULT_RULE):
    """The layer id of the detector's parameter ``name`` for a ViT of ``num_layers`` blocks; a
    ValueError for a backbone parameter ``rule`` does not cover."""
    layer_id = rule.layer_id(name, num_layers)
    if layer_id is None:
        raise ValueError(f'get_layer_id: {name!r} fits no name of the layer rule: {rule!r}')
    return layer_id


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """One parameter group per (layer id, weight decay or not), its ``lr`` already scaled
    (mmengine's schedulers scale each group's own lr); frozen parameters are left out.

    Args:
        optim_wrapper_cfg (dict): ``optim_wrapper``; its ``optimizer`` must set ``lr`` and
            ``weight_decay``.
        paramwise_cfg (dict): ``num_layers`` (the ViT's blocks), ``layer_decay_rate`` (in (0, 1])
            and optionally :class:`LayerRule`'s arguments, for other backbone names.
    """

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        cfg = self.paramwise_cfg or {}
        unknown = sorted(set(cfg) - set(REQUIRED_KEYS) - set(RULE_KEYS))
        missing = [key for key in REQUIRED_KEYS if key not in cfg]
        if unknown or missing:
            raise ValueError(
                f'LayerDecayOptimizerConstructor: paramwise_cfg takes {REQUIRED_KEYS} and '
                f'optionally {RULE_KEYS}; got unknown keys {unknown} and is missing {missing} '
                f'(paramwise_cfg={cfg})')
        self.rule = LayerRule(**{key: cfg[key] for key in RULE_KEYS if key in cfg})
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
        return self.layer_decay_rate ** (self.num_layers + 1 - layer_id)

    def add_params(self, params, module, **kwargs):
        named = list(module.named_parameters())
        # FSDP1's flattened 1-D shards (torch/distributed/fsdp/_common_utils.py) lost the names
        # and shapes the rule needs (a 1-D shard would be exempt from weight decay)
        flat = [name for name, param in named if getattr(param, '_fsdp_flattened', False)]
        if flat:
            raise ValueError(
                f'LayerDecayOptimizerConstructor: {len(flat)} parameters were flattened by FSDP1 '
                f'(FullyShardedDataParallel, e.g. mmengine\'s FSDPStrategy) before the optimizer '
                f'was built: {_listed(flat)}. Their layer and weight decay cannot be told from a '
                "flattened shard. Shard with strategy=dict(type='FSDP2Strategy') (torch's "
                'fully_shard keeps names and shapes; docs/sharding.md)')
        # frozen parameters count for the check: a frozen ViT still has its blocks
        self.rule.check([name for name, _ in named], self.num_layers)
        groups = OrderedDict()
        for name, param in named:
            if not param.requires_grad:
                continue
            layer_id = self.rule.layer_id(name, self.num_layers)
            decay = param.ndim > 1 and not name.endswith('.bias')  # as the original
            if (layer_id, decay) not in groups:
                scale = self.lr_scale(layer_id)
                groups[layer_id, decay] = dict(params=[], lr=self.base_lr * scale,
                                               weight_decay=self.base_wd if decay else 0.0,
                                               lr_scale=scale, layer_id=layer_id)
            groups[layer_id, decay]['params'].append(param)
        params.extend(groups.values())
        lines = [f'LayerDecayOptimizerConstructor: num_layers={self.num_layers}, '
                 f'layer_decay_rate={self.layer_decay_rate}, base lr={self.base_lr}, '
                 f'weight_decay={self.base_wd}',
                 f'{"layer":>5} {"lr scale":>10} {"weight decay":>12} {"#params":>12} '
                 f'{"#tensors":>8}']
        lines += [f'{layer_id:>5} {group["lr_scale"]:>10.3e} {group["weight_decay"]:>12g} '
                  f'{sum(p.numel() for p in group["params"]):>12,} {len(group["params"]):>8}'
                  for (layer_id, _), group in sorted(groups.items())]
        MMLogger.get_current_instance().info('\n'.join(lines))
