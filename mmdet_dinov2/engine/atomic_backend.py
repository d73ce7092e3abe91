"""``backend_args=dict(backend='atomic_local')``: mmengine's local file backend with atomic writes
(its ``LocalBackend.put`` writes in place: a kill or a full disk during a save leaves a truncated
file). :class:`~mmdet_dinov2.engine.hooks.AtomicCheckpointHook` picks this one."""
from mmengine.fileio import register_backend
from mmengine.fileio.backends import LocalBackend

from ..utils import atomic_file


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """:class:`~mmengine.fileio.backends.LocalBackend` with atomic ``put`` and ``put_text``."""

    def put(self, obj, filepath):
        with atomic_file.atomic_open(filepath, 'wb') as f:
            f.write(obj)

    def put_text(self, obj, filepath, encoding='utf-8'):
        with atomic_file.atomic_open(filepath, 'w', encoding=encoding) as f:
            f.write(obj)
