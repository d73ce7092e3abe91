"""``custom_imports`` of the sharding tests: a hook that writes, per rank, every iteration's loss
terms at full precision and each parameter's learning rate and weight decay by name."""
import json
import os
import os.path as osp

from mmdet.registry import HOOKS
from mmengine.dist import barrier, get_rank
from mmengine.hooks import Hook


@HOOKS.register_module()
class ShardingProbeHook(Hook):
    """Writes ``work_dir/probe_rank{rank}.json``: ``losses`` ({iteration: {term: value}}) and
    ``groups`` ({parameter name: [lr, weight_decay]}, at the first iteration). With
    ``exit_after_iter``, the processes die (no clean-up) at the end of the epoch that reaches it,
    after its checkpoint is written: a killed run."""

    priority = 'LOWEST'  # after the checkpoint hook

    def __init__(self, exit_after_iter=None):
        self.record = dict(losses={}, groups=None)
        self.exit_after_iter = exit_after_iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.record['groups'] is None:
            model = runner.model.module if hasattr(runner.model, 'module') else runner.model
            names = {id(p): n for n, p in model.named_parameters()}
            self.record['groups'] = {
                names[id(p)]: [group['lr'], group['weight_decay']]
                for group in runner.optim_wrapper.optimizer.param_groups for p in group['params']}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.record['losses'][runner.iter + 1] = {k: float(v) for k, v in outputs.items()}
        with open(osp.join(runner.work_dir, f'probe_rank{get_rank()}.json'), 'w') as f:
            json.dump(self.record, f)

    def after_train_epoch(self, runner):
        if self.exit_after_iter is not None and runner.iter >= self.exit_after_iter:
            # rank 0 writes the checkpoint after the others gathered it: without the barrier a
            # rank that exits first makes torchrun stop rank 0 in the middle of the write
            barrier()
            os._exit(3)
