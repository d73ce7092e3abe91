"""The one place where this package relies on a private name of mmengine, and the check for it.

Everything else extends mmengine through public seams (registries, ``runner_type``,
``CheckpointLoader.register_scheme``, ``register_backend``, public Runner methods). One thing has
no public seam: the order in which :class:`~mmengine.hooks.CheckpointHook` deletes the oldest
checkpoint, writes the new one and updates ``last_checkpoint`` lives in its private
``_save_checkpoint_with_step(runner, step, meta)``, which
:class:`~mmdet_dinov2.engine.hooks.AtomicCheckpointHook` overrides (writing first, deleting last),
together with the attributes that method keeps. If onedl-mmengine renames any of them, the
override would silently stop being called and saves would lose their crash safety:
:func:`check_private_names` (run by the test suite) fails loudly instead.
"""
import inspect

__all__ = ['PRIVATE_NAMES', 'check_private_names']

# (class, private method, its parameters after self); (class, instance attributes it relies on)
PRIVATE_NAMES = {
    'CheckpointHook._save_checkpoint_with_step': ('runner', 'step', 'meta'),
    'CheckpointHook instance attributes': ('keep_ckpt_ids', 'filename_tmpl', 'last_ckpt',
                                           'file_backend', 'out_dir', 'max_keep_ckpts'),
}


def check_private_names():
    """Raise AssertionError naming what changed when mmengine no longer has the names above."""
    from mmengine.hooks import CheckpointHook
    method = getattr(CheckpointHook, '_save_checkpoint_with_step', None)
    assert method is not None, (
        'mmengine.hooks.CheckpointHook has no _save_checkpoint_with_step any more: '
        'AtomicCheckpointHook\'s override is no longer called; port it to the new method')
    params = tuple(inspect.signature(method).parameters)[1:]
    expected = PRIVATE_NAMES['CheckpointHook._save_checkpoint_with_step']
    assert params == expected, (
        f'CheckpointHook._save_checkpoint_with_step{params} changed (expected {expected}): '
        'update AtomicCheckpointHook._save_checkpoint_with_step')
    source = inspect.getsource(CheckpointHook)
    missing = [name for name in PRIVATE_NAMES['CheckpointHook instance attributes']
               if f'self.{name}' not in source]
    assert not missing, f'CheckpointHook no longer sets {missing}: update AtomicCheckpointHook'
