"""A CheckpointHook whose saves survive a kill or a full disk, the previous checkpoint intact."""
import contextlib
import errno
import glob
import os
import os.path as osp

from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook

from ...utils.atomic_file import atomic_open, host_name, temp_writer
from ..work_dir_lock import held_by_this_process


class CheckpointSaveError(RuntimeError):
    """Saving a checkpoint failed (e.g. the disk is full); the previous checkpoint is untouched."""


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's :class:`~mmengine.hooks.CheckpointHook` (same arguments), crash-safe for local
    folders (mmengine deletes the oldest checkpoint first and writes in place): the checkpoint is
    written atomically (``atomic_local``), then ``last_checkpoint``, then the outdated one deleted;
    temporary files of a killed save whose writer is gone are removed at start."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # unless the config picks a backend itself
        if self.backend_args is None and self.file_client_args is None and (
                self.out_dir is None or '://' not in str(self.out_dir)):
            self.backend_args = dict(backend='atomic_local')

    def before_train(self, runner):
        super().before_train(runner)
        if not is_main_process() or not isinstance(self.file_backend, LocalBackend):
            return
        locked = held_by_this_process(self.out_dir)
        removed, unknown = 0, []
        for path in sorted(glob.glob(osp.join(self.out_dir, '.*.tmp'))):
            verdict = stale_temp(osp.basename(path), locked)
            if verdict:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                removed += 1
            elif verdict is None:
                unknown.append(osp.basename(path))
        if removed:
            runner.logger.info(f'removed {removed} temporary file(s) left in {self.out_dir} by an '
                               'interrupted checkpoint save')
        if unknown:
            runner.logger.warning(
                f'kept {len(unknown)} temporary file(s) in {self.out_dir} whose writer cannot be '
                f'checked from here (another host, or an older naming): {", ".join(unknown)}. '
                'Delete them once no run writes there.')

    # a private mmengine method: tests/engine/test_mmengine_seams.py pins it
    def _save_checkpoint_with_step(self, runner, step, meta):
        outdated = self._track_step(runner, step)
        previous = runner.message_hub.get_info('last_ckpt')
        path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(step))
        runner.message_hub.update_info('last_ckpt', path)
        try:
            runner.save_checkpoint(
                self.out_dir, self.filename_tmpl.format(step), self.file_client_args,
                save_optimizer=self.save_optimizer, save_param_scheduler=self.save_param_scheduler,
                meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
            if is_main_process():
                with atomic_open(osp.join(runner.work_dir, 'last_checkpoint'), 'w') as f:
                    f.write(path)
        except OSError as err:
            runner.message_hub.update_info('last_ckpt', previous)
            cause = ('the disk is full' if err.errno == errno.ENOSPC
                     else f'{type(err).__name__}: {err}')
            kept = (f'the previous checkpoint {previous} is intact; resume from it with --resume'
                    if previous else 'no earlier checkpoint of this run exists')
            raise CheckpointSaveError(
                f'could not save checkpoint {path}: {cause}. Nothing was written in its place and '
                f'{kept}. Free space (or set a work_dir on a larger disk) before resuming.'
            ) from err
        self.last_ckpt = path
        if outdated is not None and is_main_process():
            old = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(outdated))
            if self.file_backend.isfile(old):
                self.file_backend.remove(old)
            elif self.file_backend.isdir(old):  # deepspeed saves folders
                self.file_backend.rmtree(old)

    def _track_step(self, runner, step):
        """Record ``step`` among the kept checkpoints; return the step that falls out, if any."""
        # the same step twice: saved as periodic and as best
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return None
        outdated = (self.keep_ckpt_ids.popleft()
                    if len(self.keep_ckpt_ids) == self.max_keep_ckpts else None)
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        return outdated


def stale_temp(filename, locked):
    """Whether :func:`atomic_open`'s temporary file ``filename`` was left by a dead writer: True for
    a dead process of this host or, if ``locked`` (we hold the work-dir lock), a writer of another
    host or unknown; False when it still runs; None when it cannot be told."""
    writer = temp_writer(filename)
    if writer is not None and writer[1] == host_name():
        return writer[0] != os.getpid() and not pid_alive(writer[0])
    return True if locked else None


def pid_alive(pid):
    """Whether process ``pid`` runs on this host (a zombie, dead but not yet reaped, does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; no pid can be that large
        return False
    except PermissionError:  # it exists, under another user
        return True
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError):  # no /proc (not Linux), or it exited meanwhile
        return True
