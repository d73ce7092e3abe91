"""Atomic file writes: a reader sees the old file or the complete new one, never a torn one."""
import contextlib
import os
import re
import socket
import tempfile
from pathlib import Path

# .NAME.PID@HOST.RANDOM.tmp: whoever finds a temporary file can tell whether its writer still runs
_TEMP_NAME = re.compile(r'^\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9.-]+)\.[^.]+\.tmp$')


@contextlib.contextmanager
def atomic_open(path, mode='wb', encoding=None):
    """Yield a temporary file beside ``path`` (its folder created when missing) that replaces
    ``path`` in one rename on a clean exit. Data and folder are fsynced, so a power cut, a kill or a
    full disk leaves the previous ``path`` or the new one; the temporary file is removed when the
    block raises (SIGKILL leaves a hidden ``.NAME.PID@HOST.*.tmp``, see :func:`temp_writer`).

    Args:
        mode (str): ``'wb'`` for bytes or ``'w'`` for text.
        encoding (str | None): for ``mode='w'`` (default UTF-8).
    """
    if mode not in ('wb', 'w'):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.{os.getpid()}@{host_name()}.', suffix='.tmp',
                               dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give what open() would give
        with os.fdopen(fd, mode, encoding=encoding or ('utf-8' if mode == 'w' else None)) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # the rename, durable
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # a folder that cannot be opened
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_writer(filename):
    """(pid, host) of the writer of a temporary file of :func:`atomic_open`, from its name (no
    folder, e.g. ``.epoch_2.pth.4242@node7.k3j_x9.tmp``); None for a name not of that form."""
    match = _TEMP_NAME.match(filename)
    return (int(match['pid']), match['host']) if match else None


def host_name():
    """This host's name as temporary file names carry it (only letters, digits, '.' and '-')."""
    return re.sub(r'[^A-Za-z0-9.-]', '-', socket.gethostname())[:64] or 'unknown'
