"""``strategy = dict(type='FSDP2Strategy')``: parameters, gradients and optimizer state sharded over
the processes with torch's FSDP2 (``fully_shard``), on ``SafeFlexibleRunner`` (docs/sharding.md).
Not mmengine's FSDP1 ``FSDPStrategy``: it needs an accelerator (torch 2.14) and hands the optimizer
flattened 1-D shards, losing the names and shapes layer decay and weight decay need. Checkpoints
hold full tensors laid out as a DDP run's (one file, by rank 0), so either run loads the other's."""
import os.path as osp

import torch
import torch.distributed as dist
from mmengine.device import get_device
from mmengine.dist import is_distributed, is_main_process
from mmengine.registry import STRATEGIES
from mmengine.runner.checkpoint import save_checkpoint
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from .runner import detector_state_dict, load_detector_weights

# through the registry, mmengine's public name for its strategies (the module is private)
DDPStrategy = STRATEGIES.get('DDPStrategy')

PRECISIONS = {None: None, 'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def _full(value):
    """DTensors (in dicts too) gathered whole, on the CPU (collective: all ranks, in one order)."""
    if isinstance(value, dict):
        return {key: _full(item) for key, item in value.items()}
    if isinstance(value, DTensor):
        value = value.full_tensor()
    return value.detach().cpu() if torch.is_tensor(value) else value


def _like(value, reference):
    """``value`` (a whole tensor) sharded as the DTensor ``reference``: each rank its slice."""
    if isinstance(reference, DTensor) and torch.is_tensor(value) and not isinstance(value, DTensor):
        return distribute_tensor(value.to(reference.device), reference.device_mesh,
                                 reference.placements, src_data_rank=None)
    return value


def shard_units(model, shard_lists):
    """The names of the modules that become units: the children of each module list named in
    ``shard_lists``, in order; a ValueError naming a name that is not a module list of ``model``."""
    modules = dict(model.named_modules())
    units = []
    for name in shard_lists:
        if not isinstance(modules.get(name), torch.nn.ModuleList):
            lists = sorted(n for n, m in modules.items() if isinstance(m, torch.nn.ModuleList))
            raise ValueError(f'FSDP2Strategy: shard_lists names {name!r}, which is not a module '
                             f'list of this model; its module lists: {lists}')
        units += [f'{name}.{i}' for i in range(len(modules[name]))]
    return units


@STRATEGIES.register_module()
class FSDP2Strategy(DDPStrategy):
    """Each child of the module lists ``shard_lists`` names is one ``fully_shard`` unit, gathered
    just for its own forward and backward; the rest is the root unit. Without a process group
    (``tools/test.py`` on one process) the model runs unsharded.

    Args:
        shard_lists (sequence[str]): the detector's module lists, by name, whose children are units.
        param_dtype (str, optional): ``'bf16'`` or ``'fp16'``: the units' parameters are gathered
            and used in it; master weights, gradient reduction, optimizer state and the root stay
            float32 (use ``BF16OptimWrapper`` and ``BF16Hook``). None or ``'fp32'``: no cast.
        reshard_after_forward (bool): free the gathered parameters after each unit's forward
            (ZeRO-3, least memory) or keep them until its backward (ZeRO-2, less communication).
        **kwargs: mmengine's :class:`DDPStrategy`'s.
    """

    partial_load = False  # SafeFlexibleRunner sets it from the config for load_from, not resume

    def __init__(self, *, shard_lists=('backbone.blocks', 'backbone.interactions'),
                 param_dtype=None, reshard_after_forward=True, **kwargs):
        super().__init__(**kwargs)
        if isinstance(shard_lists, str):
            raise TypeError(f'FSDP2Strategy: shard_lists={shard_lists!r} must be a list of module '
                            "names, e.g. ['backbone.blocks']")
        if param_dtype not in PRECISIONS:
            raise ValueError(f'FSDP2Strategy: param_dtype={param_dtype!r}; use one of '
                             f'{sorted(k for k in PRECISIONS if k)} or None')
        self.shard_lists, self.param_dtype = tuple(shard_lists), param_dtype
        self.reshard_after_forward = reshard_after_forward

    def _wrap_model(self, model):
        model = self.convert_model(model.to(get_device()))
        units = shard_units(model, self.shard_lists)  # checked in one process too
        if not is_distributed():  # a group of one (torchrun, 1 process) is sharded: the same path
            self.logger.info('FSDP2Strategy: no process group, the model is not sharded')
            return model
        for tensor in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(tensor.data, src=0)  # the same start on every rank, as DDP does
        cast = PRECISIONS[self.param_dtype]
        policy = MixedPrecisionPolicy(cast, reduce_dtype=torch.float32 if cast else None)
        for name in units:  # children first, the root last
            fully_shard(model.get_submodule(name), mp_policy=policy,
                        reshard_after_forward=self.reshard_after_forward)
        fully_shard(model, reshard_after_forward=self.reshard_after_forward)
        self.logger.info(f'FSDP2Strategy: {len(units)} units ({", ".join(self.shard_lists)}) and '
                         f'the root sharded over {dist.get_world_size()} processes, parameters in '
                         f'{self.param_dtype or "fp32"}')
        return model

    @property
    def _sharded(self):
        return isinstance(getattr(self, 'model', None), FSDPModule)

    def model_state_dict(self):
        return _full(self.model.state_dict())

    def optim_state_dict(self):
        return _full(self.optim_wrapper.state_dict())

    def load_checkpoint(self, filename, **kwargs):
        self._source = str(filename)  # named by the load report
        return super().load_checkpoint(filename, **kwargs)

    def load_model_state_dict(self, state_dict, *, strict=False, revise_keys=((r'^module.', ''),)):
        """Load a whole-tensor state dict (a DDP or sharded run's, same layout) into the model,
        refusing names or shapes that do not fit unless :attr:`partial_load`."""
        state_dict = detector_state_dict(state_dict, revise_keys)
        own = self.model.state_dict()
        state_dict = {k: _like(v, own[k]) if k in own else v for k, v in state_dict.items()}
        source = getattr(self, '_source', 'the checkpoint')
        load_detector_weights(self.model, state_dict, source=source, partial=self.partial_load,
                              logger=self.logger)

    def load_optim_state_dict(self, state_dict):
        params = [p for group in self.optim_wrapper.optimizer.param_groups for p in group['params']]
        saved = state_dict.get('state', {})
        ids = [i for group in state_dict.get('param_groups', []) for i in group['params']]
        for index, param in zip(ids, params):
            for key, value in saved.get(index, {}).items():
                if torch.is_tensor(value) and value.dim():
                    saved[index][key] = _like(value, param)
        self.optim_wrapper.load_state_dict(state_dict)

    def save_checkpoint(self, filename, *, save_optimizer=True, save_param_scheduler=True,
                        extra_ckpt=None, callback=None):
        if not self._sharded:
            return super().save_checkpoint(
                filename, save_optimizer=save_optimizer, save_param_scheduler=save_param_scheduler,
                extra_ckpt=extra_ckpt, callback=callback)
        # gathering is collective: every rank takes part, rank 0 writes
        checkpoint = dict(extra_ckpt or {}, state_dict=self.model_state_dict())
        if save_optimizer:
            checkpoint['optimizer'] = self.optim_state_dict()
        if not is_main_process():
            return None
        if save_param_scheduler and hasattr(self, 'param_schedulers'):
            checkpoint['param_schedulers'] = self.scheduler_state_dict()
        checkpoint.setdefault('meta', {}).update(seed=self.seed)
        if callback is not None:
            callback(checkpoint)
        local = '://' not in str(filename) and osp.isdir(osp.dirname(osp.abspath(filename)))
        save_checkpoint(checkpoint, filename,
                        backend_args=dict(backend='atomic_local') if local else None)
