"""Whether the checkpoint being loaded right now is one the user vouched for.

Checkpoints are read with ``torch.load(weights_only=True)`` and a small allow-list: a file whose
pickle needs anything beyond tensors, containers and plain data is refused. A user who knows where
such a file comes from says so in exactly one way per entry point:

- the tools: ``--trust-checkpoint`` (it sets the config key below; the flag wins over the config);
- a config: ``trust_checkpoint = True`` at the top level, applied by
  :class:`~mmdet_dinov2.engine.runner.SafeLoadRunner` around its own ``train``/``val``/``test``;
- Python code: ``with trusted_checkpoints(): ...`` around the loads it vouches for, or
  ``trust=True`` on :func:`~mmdet_dinov2.checkpoints.load_checkpoint_file`.

Trust lives in a :mod:`contextvars` variable set only inside a ``with`` block, so it ends with the
block that asked for it, also when that block raises: a failed trusted run cannot leave a later
untrusted load trusting. (Threads started inside the block do not inherit it; loads run in the
thread that asked.)
"""
import contextlib
import contextvars

__all__ = ['checkpoints_trusted', 'trusted_checkpoints']

_TRUSTED = contextvars.ContextVar('mmdet_dinov2_trusted_checkpoints', default=False)


def checkpoints_trusted():
    """Whether the code running now is inside a :func:`trusted_checkpoints` block that trusts."""
    return _TRUSTED.get()


@contextlib.contextmanager
def trusted_checkpoints(trusted=True):
    """Trust (or, with ``False``, distrust) the checkpoints loaded inside this ``with`` block.

    Args:
        trusted (bool): True lets refused files load with ``weights_only=False``; their pickle may
            run code, so only for files you trust.
    """
    if not isinstance(trusted, bool):
        raise TypeError(f'trust_checkpoint must be True or False, got {trusted!r}')
    token = _TRUSTED.set(trusted)
    try:
        yield
    finally:
        _TRUSTED.reset(token)
