"""Faults for the tests, loaded by a training subprocess through ``custom_imports``.

A real ``kill -9`` of the process itself at a chosen moment, so the state on disk is what a crash
leaves: no exception handler, ``finally`` block or atexit runs. Importing this module also turns off
mmengine's yapf formatting of config text (cosmetic; it costs seconds per checkpoint here).
"""
import contextlib
import os
import signal

from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from yapf.yapflib import yapf_api

from mmdet_dinov2.utils import atomic_file

yapf_api.FormatCode = lambda text, **kwargs: (text, False)


@HOOKS.register_module()
class SigkillAtIterHook(Hook):
    """SIGKILL the process before training iteration ``at_iter`` (0-based) runs."""

    def __init__(self, at_iter):
        self.at_iter = at_iter

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.at_iter:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class SigkillDuringSaveHook(Hook):
    """SIGKILL the process halfway through writing the checkpoint of epoch ``at_epoch``."""

    def __init__(self, at_epoch):
        self.at_epoch = at_epoch

    def before_save_checkpoint(self, runner, checkpoint):
        if checkpoint['meta']['epoch'] == self.at_epoch:
            atomic_file.atomic_open = _dying_open(atomic_file.atomic_open)


def _dying_open(real_open):
    @contextlib.contextmanager
    def dying_open(path, mode='wb', encoding=None):
        with real_open(path, mode, encoding) as f:
            yield _HalfWriter(f)
    return dying_open


class _HalfWriter:
    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data[:len(data) // 2])
        self.f.flush()
        os.fsync(self.f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
