"""The one private mmengine name this package relies on, and the check for it.

The order in which :class:`~mmengine.hooks.CheckpointHook` deletes the oldest checkpoint, writes the
new one and updates ``last_checkpoint`` has no public seam: it is the private
``_save_checkpoint_with_step``, which :class:`~mmdet_dinov2.engine.hooks.AtomicCheckpointHook`
overrides. Were it renamed, saves would silently lose their crash safety: :func:`check_private_names`
(run by the tests) fails loudly instead.
"""
import inspect

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
