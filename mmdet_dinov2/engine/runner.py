"""``runner_type = 'SafeLoadRunner'`` (or ``'SafeFlexibleRunner'`` for sharded configs): mmengine's
runner with checked checkpoint loading, scoped trust and a locked work dir (docs/reliability.md).

Config keys: ``trust_checkpoint``, ``partial_load`` (load what fits), ``resume`` (True, or
``'if_exists'``), ``lock_work_dir_at_build`` (tools/train.py: lock before mmengine writes there; off
by default, since tools/test.py may evaluate in the work dir of a running training).
"""
import contextlib
import glob
import os.path as osp
import re

from mmdet.registry import RUNNERS
from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.model import is_model_wrapper
from mmengine.runner import FlexibleRunner, Runner
from mmengine.runner.checkpoint import CheckpointLoader, find_latest_checkpoint, load_state_dict

from ..checkpoints import compare_state_dict, trusted_checkpoints
from ..models import check_backbone_neck, check_num_classes
from .work_dir_lock import WorkDirLock, WorkDirLockedError

PARTIAL_ADVICE = ('If this is intended (e.g. fine-tuning a COCO detector on other classes), allow '
                  'it with partial_load = True in the config (--cfg-options partial_load=True): '
                  'the tensors that fit are loaded and the others keep their initial values.')
_MMENGINE_DEFAULT_HOOKS = ('runtime_info', 'timer', 'sampler_seed', 'logger', 'param_scheduler',
                           'checkpoint')


class ResumeError(RuntimeError):
    """Nothing to resume from, or a checkpoint that another configuration saved."""


def load_detector_weights(model, state_dict, source='the checkpoint', partial=False, logger=None):
    """Load a detector's state dict (names revised, no ``module.``) into the unwrapped ``model``;
    return the LoadReport, or raise CheckpointMismatchError naming the tensors that do not fit.

    Args:
        source (str): what to call the checkpoint in messages (its path).
        partial (bool): load what fits and log the rest (NaN/inf values and integers under float
            names are refused even then).
    """
    report = compare_state_dict(model.state_dict(), state_dict)
    if report.broken or (not partial and not report.complete):
        raise report.error(source, report.broken_advice() or PARTIAL_ADVICE)
    load_state_dict(model, {name: state_dict[name] for name in report.loaded}, strict=False,
                    logger=logger)
    if logger is not None:
        logger.info(f'Loaded {report.summary()} (from {source})')
        for line in report.problems():
            logger.warning(f'partial_load: {line}')
    return report


def detector_state_dict(checkpoint, revise_keys=((r'^module\.', ''),)):
    """The state dict of a detector checkpoint (or the checkpoint itself if it is one), its names
    revised by ``(pattern, replacement)`` pairs as mmengine's loader does."""
    state_dict = checkpoint.get('state_dict', checkpoint)
    for pattern, replacement in revise_keys:
        state_dict = {re.sub(pattern, replacement, key): v for key, v in state_dict.items()}
    return state_dict


def config_flag(cfg, key):
    """``cfg[key]`` (default False), which must be True or False."""
    value = cfg.get(key, False)
    if not isinstance(value, bool):
        raise TypeError(f'config key {key} must be True or False, got {value!r}')
    return value


class SafeLoadMixin:
    """The work-dir lock, scoped trust, resume checks and ``None`` for our default hooks."""

    _resuming = False
    _work_dir_lock = None

    def _lock_work_dir_at_build(self):
        """Call once the process group exists, before any write."""
        # popped: a config copy that tools/test.py reads later must not lock the work dir
        if not self.cfg.pop('lock_work_dir_at_build', False):
            return
        refusal = [None]
        if is_main_process():
            try:
                self._work_dir_lock = WorkDirLock(self.work_dir).acquire()
            except WorkDirLockedError as err:
                refusal = [str(err)]
        broadcast_object_list(refusal)  # every rank stops before writing its log folder
        if refusal[0] is not None:
            raise WorkDirLockedError(refusal[0])

    def register_default_hooks(self, hooks=None):
        # mmengine only lets ``name=None`` switch off its own default hooks; ours (non_finite_loss,
        # reseed) are default hooks too, so a config may say default_hooks = dict(reseed=None)
        if hooks is not None:
            hooks = {name: hook for name, hook in hooks.items() if hook is not None
                     or name in _MMENGINE_DEFAULT_HOOKS}
        return super().register_default_hooks(hooks)

    def train(self):
        lock = self._work_dir_lock or (
            WorkDirLock(self.work_dir, logger=self.logger) if is_main_process() else None)
        with self._trust(), (lock or contextlib.nullcontext()):
            return super().train()

    def val(self):
        with self._trust():
            return super().val()

    def test(self):
        with self._trust():
            return super().test()

    def load_or_resume(self):
        resume, load_from = self.cfg.get('resume', False), self.cfg.get('load_from')
        if resume is True and load_from is None:
            self._check_something_to_resume()
        elif resume == 'if_exists' and load_from is None and not find_latest_checkpoint(
                self.work_dir):
            self.logger.info(f'resume=if_exists: no checkpoint in {self.work_dir}, starting a '
                             'new run')
        return super().load_or_resume()

    def resume(self, filename, *args, **kwargs):
        self._resuming = True
        try:
            return super().resume(filename, *args, **kwargs)
        finally:
            self._resuming = False

    def _partial_load(self, strict):
        """``partial_load`` applies to ``load_from``, never to a resume or a strict load."""
        return config_flag(self.cfg, 'partial_load') and not (strict or self._resuming)

    def _trust(self):
        trusted = config_flag(self.cfg, 'trust_checkpoint')
        if trusted:
            self.logger.warning(
                'trust_checkpoint is on: checkpoints that need more than tensors and plain data '
                'are unpickled with weights_only=False, which can run code hidden in the file')
        return trusted_checkpoints(trusted)

    def _check_something_to_resume(self):
        pointer = osp.join(self.work_dir, 'last_checkpoint')
        latest = find_latest_checkpoint(self.work_dir)
        start_over = ('To start a new run instead, drop --resume (or use resume = '
                      "'if_exists' to resume only when a checkpoint exists).")
        if latest is None:
            raise ResumeError(f'--resume: nothing to resume in {self.work_dir} (no last_checkpoint '
                              'file there). Check --work-dir, or give the checkpoint: --resume '
                              f'PATH. {start_over}')
        if latest and ('://' in latest or osp.isfile(latest)):
            return
        found = sorted(glob.glob(osp.join(self.work_dir, '*.pth')), key=osp.getmtime)[-3:]
        explicit = ('Give a checkpoint explicitly: --resume PATH'
                    + (f' (checkpoints there: {", ".join(found)})' if found else '') + '.')
        if not latest:
            raise ResumeError(f'--resume: {pointer} is empty (a save was interrupted?). '
                              f'{explicit} {start_over}')
        raise ResumeError(f'--resume: {pointer} names {latest}, which does not exist. ' + explicit)


@RUNNERS.register_module()
class SafeLoadRunner(SafeLoadMixin, Runner):
    """mmengine's Runner (same arguments) that checks what it loads; config keys (see the module):
    ``trust_checkpoint``, ``partial_load``, ``resume``, ``lock_work_dir_at_build``."""

    def setup_env(self, env_cfg):
        super().setup_env(env_cfg)  # starts the process group; mmengine writes nothing before it
        self._lock_work_dir_at_build()

    def build_model(self, model):
        if isinstance(model, dict):  # mmdet's FPN would only assert on a backbone/neck mismatch
            check_backbone_neck(model)
            check_num_classes(self.cfg)
        return super().build_model(model)

    def load_checkpoint(self, filename, map_location='cpu', strict=False,
                        revise_keys=[(r'^module.', '')]):  # noqa: B006 (mmengine's signature)
        checkpoint = CheckpointLoader.load_checkpoint(filename, map_location=map_location,
                                                      logger=self.logger)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)  # as mmengine does
        model = self.model.module if is_model_wrapper(self.model) else self.model
        load_detector_weights(model, detector_state_dict(checkpoint, revise_keys),
                              source=str(filename), partial=self._partial_load(strict),
                              logger=self.logger)
        saved = checkpoint.get('optimizer')
        if self._resuming and isinstance(saved, dict) and hasattr(self.optim_wrapper, 'optimizer'):
            self._check_optimizer_state(saved, filename)
            self._log_schedule_change(saved, filename)
        return checkpoint

    def _check_optimizer_state(self, saved, filename):
        """Refuse an optimizer state saved for other parameters (another config's checkpoint):
        torch would otherwise fail inside the optimizer's step, far from the cause."""
        groups = self.optim_wrapper.optimizer.param_groups
        saved_groups = saved.get('param_groups', [])
        sizes = [len(group['params']) for group in groups]
        saved_sizes = [len(group['params']) for group in saved_groups]
        if sizes != saved_sizes:
            problem = (f'{len(saved_sizes)} parameter groups of {sum(saved_sizes)} parameters '
                       f'in the checkpoint, {len(sizes)} groups of {sum(sizes)} here')
        else:
            params = [p for group in groups for p in group['params']]
            ids = [i for group in saved_groups for i in group['params']]
            problem = next((f'optimizer state {key!r} of parameter #{index} has shape '
                            f'{tuple(value.shape)}, the parameter {tuple(param.shape)}'
                            for param, index in zip(params, ids)
                            for key, value in saved.get('state', {}).get(index, {}).items()
                            if hasattr(value, 'shape') and value.dim()
                            and value.shape != param.shape), None)
        if problem:
            raise ResumeError(
                f'cannot resume from {filename}: its optimizer state was saved for other '
                f'parameters ({problem}): a checkpoint of another config (layer decay, frozen '
                'parts, optimizer)? Resume only from this config\'s checkpoints; to start from '
                'its weights instead, use load_from (--cfg-options load_from=PATH) without '
                '--resume.')

    def _log_schedule_change(self, saved, filename):
        """Say when the config's lr or layer decay differs from the checkpoint's: mmengine's
        resume restores the optimizer's and the schedulers' state, so the checkpoint's apply."""
        theirs = _schedule(saved['param_groups'])
        ours = _schedule(self.optim_wrapper.optimizer.param_groups)
        changed = [key for key in ours if ours[key] != theirs[key] and not (
            ours[key] and theirs[key] and abs(ours[key] - theirs[key]) <= 1e-9 * ours[key])]
        if not changed:
            return
        said = [', '.join(f'{key}={schedule[key]:g}' if schedule[key] else f'no {key}'
                          for key in changed) for schedule in (theirs, ours)]
        self.logger.warning(
            f'--resume: {filename} was trained with {said[0]}, the config says {said[1]}: the '
            "checkpoint's values apply (resuming restores the optimizer and its learning-rate "
            "schedule as saved). To train with the config's, start from the weights instead: "
            'load_from=PATH without --resume.')


@RUNNERS.register_module()
class SafeFlexibleRunner(SafeLoadMixin, FlexibleRunner):
    """mmengine's FlexibleRunner (same arguments; it takes a ``strategy``) with SafeLoadRunner's
    lock, trust, resume checks and config keys. ``FSDP2Strategy`` checks the weights and applies
    ``partial_load``; mmengine's strategies load as mmengine does."""

    def build_strategy(self, *args, **kwargs):
        strategy = super().build_strategy(*args, **kwargs)  # starts the process group
        self._lock_work_dir_at_build()
        return strategy

    def load_checkpoint(self, filename, map_location='cpu', strict=False,
                        revise_keys=[(r'^module.', '')]):  # noqa: B006 (mmengine's signature)
        if not hasattr(self.strategy, 'partial_load'):
            return super().load_checkpoint(filename, map_location, strict, revise_keys)
        self.strategy.partial_load = self._partial_load(strict)
        try:
            return super().load_checkpoint(filename, map_location, strict, revise_keys)
        finally:
            self.strategy.partial_load = False


def _schedule(groups):
    """``lr`` (the base lr) and ``layer_decay_rate`` (or None) of optimizer parameter groups, read
    back from the ``lr_scale`` and ``layer_id`` that LayerDecayOptimizerConstructor gives each."""
    first = groups[0]
    schedule = dict(lr=first.get('initial_lr', first['lr']) / first.get('lr_scale', 1.0),
                    layer_decay_rate=None)
    layers = sorted({(group['layer_id'], group['lr_scale']) for group in groups
                     if 'layer_id' in group})
    if len(layers) > 1:
        (low, low_scale), (high, high_scale) = layers[0], layers[-1]
        schedule['layer_decay_rate'] = (low_scale / high_scale) ** (1 / (high - low))
    return schedule
