"""A local file backend whose writes are atomic, registered in mmengine as ``'atomic_local'``.

mmengine's ``LocalBackend.put`` opens the destination with ``'wb'`` and writes in place: a kill or a
full disk during ``Runner.save_checkpoint`` leaves a truncated checkpoint. A hook or runner that
passes ``backend_args=dict(backend='atomic_local')`` (as
:class:`~mmdet_dinov2.engine.hooks.AtomicCheckpointHook` does for local folders) writes through
:func:`~mmdet_dinov2.utils.atomic_open` instead: the old file or the complete new one, never a torn
one. mmengine's own ``'local'`` backend is left as it is.
"""
from mmengine.fileio import register_backend
from mmengine.fileio.backends import LocalBackend

from ..utils import atomic_file

__all__ = ['AtomicLocalBackend']


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """:class:`~mmengine.fileio.backends.LocalBackend` with atomic ``put`` and ``put_text``."""

    def put(self, obj, filepath):
        with atomic_file.atomic_open(filepath, 'wb') as f:
            f.write(obj)

    def put_text(self, obj, filepath, encoding='utf-8'):
        with atomic_file.atomic_open(filepath, 'w', encoding=encoding) as f:
            f.write(obj)
