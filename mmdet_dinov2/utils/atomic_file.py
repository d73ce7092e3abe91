"""Atomic file writes: a reader sees the old file or the complete new one, never a torn one."""
import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ['atomic_open', 'install']


@contextlib.contextmanager
def atomic_open(path, mode='wb', encoding=None):
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` in one rename.

    The data is fsynced before the rename and the folder after it, so a power cut, a ``kill -9``
    or a full disk (``OSError`` ENOSPC) leaves either the previous ``path`` or the new one; the
    temporary file is removed when the block raises. (A process killed with SIGKILL cannot clean
    up: it leaves a hidden ``.NAME.*.tmp`` beside ``path``, never a torn ``path``.)

    Args:
        path (str | Path): the destination; its folder is created when missing.
        mode (str): ``'wb'`` for bytes or ``'w'`` for text.
        encoding (str | None): text encoding for ``mode='w'`` (default UTF-8).

    Yields:
        file: the open temporary file.
    """
    if mode not in ('wb', 'w'):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would give
        with os.fdopen(fd, mode, encoding=encoding or ('utf-8' if mode == 'w' else None)) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def install():
    """Make mmengine's local file backend write atomically (checkpoints, dumped configs, json).

    ``Runner.save_checkpoint`` ends in ``LocalBackend.put``, which opens the destination with
    ``'wb'`` and writes in place: a kill or a full disk during the write leaves a truncated
    checkpoint. After this call ``put`` and ``put_text`` write through :func:`atomic_open`.
    """
    from mmengine.fileio.backends import LocalBackend
    LocalBackend.put = _put
    LocalBackend.put_text = _put_text


def _put(self, obj, filepath):
    with atomic_open(filepath, 'wb') as f:
        f.write(obj)


def _put_text(self, obj, filepath, encoding='utf-8'):
    with atomic_open(filepath, 'w', encoding=encoding) as f:
        f.write(obj)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder):
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
