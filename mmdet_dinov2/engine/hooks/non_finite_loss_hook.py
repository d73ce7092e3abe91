"""Stop training at the first NaN or infinite loss, saying where and what to resume from."""
import math
import os.path as osp

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite during training."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` at the first iteration with a non-finite loss term,
    before :class:`~mmengine.hooks.CheckpointHook` could save the poisoned weights (mmdet's
    ``CheckInvalidLossHook`` looks at the total loss every 50 iterations only)."""

    priority = 'ABOVE_NORMAL'  # before LoggerHook and CheckpointHook

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        values = {key: float(value.detach()) if torch.is_tensor(value) else float(value)
                  for key, value in (outputs or {}).items() if 'loss' in key}
        terms = ', '.join(f'{key}={value}' for key, value in values.items()
                          if not math.isfinite(value))
        if not terms:
            return
        raise NonFiniteLossError(
            f'non-finite loss at iteration {runner.iter + 1} (epoch {runner.epoch + 1}): {terms}. '
            f'Training stopped; weights of this iteration were not saved. Last good checkpoint: '
            f'{_last_checkpoint(runner)}. Usual causes: a learning rate too high for the batch '
            'size (see auto_scale_lr), missing gradient clipping (optim_wrapper.clip_grad), '
            'fp16 overflow (try without --amp), or bad boxes in the data '
            '(tools/misc/check_dataset.py).')


def _last_checkpoint(runner):
    pointer, path = osp.join(runner.work_dir, 'last_checkpoint'), ''
    if osp.isfile(pointer):
        with open(pointer) as f:
            path = f.read().strip()
    return f'{path} (resume with --resume)' if path else 'none (this run saved no checkpoint yet)'
