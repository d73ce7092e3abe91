"""Reliability utilities: safe checkpoint loading, the trust switch, atomic writes."""
from .atomic_file import atomic_open
from .checkpoint_trust import checkpoints_trusted, set_checkpoint_trust, trusted_checkpoints

__all__ = ['atomic_open', 'checkpoints_trusted', 'install_mmengine_guards',
           'set_checkpoint_trust', 'trusted_checkpoints']


def install_mmengine_guards():
    """Make mmengine refuse unsafe checkpoints and write local files atomically (idempotent)."""
    from . import atomic_file, safe_load  # safe_load needs mmdet_dinov2.checkpoints
    safe_load.install()
    atomic_file.install()
