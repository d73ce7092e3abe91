"""Whether the checkpoint loaded now is one the user vouched for: a :mod:`contextvars` variable set
only inside a ``with trusted_checkpoints():`` block, so trust ends with the block, also when it
raises (threads started inside do not inherit it)."""
import contextlib
import contextvars

_TRUSTED = contextvars.ContextVar('mmdet_dinov2_trusted_checkpoints', default=False)


def checkpoints_trusted():
    """Whether the code running now is inside a trusting :func:`trusted_checkpoints` block."""
    return _TRUSTED.get()


@contextlib.contextmanager
def trusted_checkpoints(trusted=True):
    """Trust (``False``: distrust) the checkpoints loaded inside this block: files the allow-list
    refuses then load with ``weights_only=False``, whose pickle may run code."""
    if not isinstance(trusted, bool):
        raise TypeError(f'trust_checkpoint must be True or False, got {trusted!r}')
    token = _TRUSTED.set(trusted)
    try:
        yield
    finally:
        _TRUSTED.reset(token)
