"""Atomic file writes: a reader sees the old file or the complete new one, never a torn one."""
import contextlib
import os
import re
import socket
import tempfile
from pathlib import Path

__all__ = ['atomic_open', 'host_name', 'temp_writer']

# .NAME.PID@HOST.RANDOM.tmp: whoever finds a temporary file can tell whether its writer still runs
_TEMP_NAME = re.compile(r'^\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9.-]+)\.[^.]+\.tmp$')


@contextlib.contextmanager
def atomic_open(path, mode='wb', encoding=None):
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` in one rename.

    The data is fsynced before the rename and the folder after it, so a power cut, a ``kill -9``
    or a full disk (``OSError`` ENOSPC) leaves either the previous ``path`` or the new one; the
    temporary file is removed when the block raises. (A process killed with SIGKILL cannot clean
    up: it leaves a hidden ``.NAME.PID@HOST.*.tmp`` beside ``path``, never a torn ``path``; see
    :func:`temp_writer`.)

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
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.{os.getpid()}@{host_name()}.', suffix='.tmp',
                               dir=path.parent)
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


def temp_writer(filename):
    """The writer of a temporary file of :func:`atomic_open`, from its name.

    Args:
        filename (str): a file name (no folder), e.g. ``.epoch_2.pth.4242@node7.k3j_x9.tmp``.

    Returns:
        tuple[int, str] | None: (pid, host name) of the process that wrote it, or None when the
        name is not of that form (another program's file, or an older naming without the pid).
    """
    match = _TEMP_NAME.match(filename)
    return (int(match['pid']), match['host']) if match else None


def host_name():
    """This host's name as temporary file names carry it (only letters, digits, '.' and '-')."""
    return re.sub(r'[^A-Za-z0-9.-]', '-', socket.gethostname())[:64] or 'unknown'


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
