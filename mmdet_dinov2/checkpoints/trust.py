"""The process-wide switch that lets a user vouch for a checkpoint that safe loading refuses.

Checkpoints are read with ``torch.load(weights_only=True)``: a file whose pickle needs anything
beyond tensors, containers and plain data is refused. A user who knows where such a file comes from
turns trust on with ``--trust-checkpoint`` (train/test/convert tools) or ``trust_checkpoint = True``
at the top level of a config (applied by :class:`~mmdet_dinov2.engine.hooks.CheckpointTrustHook`).
"""
import contextlib

__all__ = ['checkpoints_trusted', 'set_checkpoint_trust', 'trusted_checkpoints']

_trusted = False


def checkpoints_trusted():
    """Whether the user has said the checkpoints of this process are trusted."""
    return _trusted


def set_checkpoint_trust(trusted):
    """Turn trust on or off for this process; returns the previous setting.

    Args:
        trusted (bool): True loads refused files with ``weights_only=False`` (their pickle may run
            code: only for files you trust).
    """
    global _trusted
    if not isinstance(trusted, bool):
        raise TypeError(f'trust_checkpoint must be True or False, got {trusted!r}')
    previous, _trusted = _trusted, trusted
    return previous


@contextlib.contextmanager
def trusted_checkpoints(trusted=True):
    """Trust (or distrust) checkpoints inside a ``with`` block, restoring the setting after it."""
    previous = set_checkpoint_trust(trusted)
    try:
        yield
    finally:
        set_checkpoint_trust(previous)
