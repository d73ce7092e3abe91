"""One training per work dir: a lock file that names its owner, and a judge of stale owners.

Two trainings on the same work dir overwrite each other's checkpoints and ``last_checkpoint``. A
training holds :class:`WorkDirLock` for as long as it runs; a second one is refused with
:class:`WorkDirLockedError`, which says who holds the work dir and what to do.

The lock is a file, ``WORK_DIR/.train.lock``, holding JSON: the owner's pid, host name, start
time and a random token. It is written completely under a private name and then hard-linked into
place, which fails when the file exists: two runs never both create it, and nobody reads a half
written one (where a file system has no hard links, ``O_CREAT | O_EXCL`` creates it instead).

A lock is stale, and is taken over with a warning, when its owner is provably gone: the same host
and a pid that no longer runs, or this very process (an earlier run here ended by an exception
without releasing), or a lock file that cannot be read and was not touched for
:data:`UNREADABLE_STALE_AFTER_S` seconds. A lock from another host is refused: on a shared file
system the owner's liveness cannot be checked from here. Pid reuse is not detected: if the owner
died and an unrelated process got its pid (e.g. after a reboot), the lock is refused and the error
says to delete the file if that run is dead. Hosts are told apart by name only: containers that
share a work dir need distinct host names.

Everything here is the standard library, so that a test can use it without mmdet.
"""
import contextlib
import datetime
import errno
import json
import logging
import os
import os.path as osp
import secrets
import socket
import time

__all__ = ['LOCK_NAME', 'WorkDirLock', 'WorkDirLockedError', 'held_by_this_process',
           'pid_alive']

LOCK_NAME = '.train.lock'
UNREADABLE_STALE_AFTER_S = 30.0
GUARD_STALE_AFTER_S = 10.0  # a takeover takes milliseconds

_HELD = {}  # realpath of a work dir -> the WorkDirLock of this process that holds it


class WorkDirLockedError(RuntimeError):
    """Another training holds the work dir (or may hold it: another host, an unreadable lock)."""


def held_by_this_process(work_dir):
    """Whether this process holds the lock of ``work_dir`` now.

    True only while a :class:`WorkDirLock` of this process is acquired on it and the lock file
    still holds that lock's token (not if someone deleted it and another run took the work dir).
    """
    lock = _HELD.get(osp.realpath(work_dir))
    return lock is not None and lock.is_held()


def pid_alive(pid):
    """Whether process ``pid`` runs on this host (a zombie, dead but not yet reaped, does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError):  # no /proc (not Linux), or it exited meanwhile
        return True


class WorkDirLock:
    """The lock of one work dir, as a context manager or with :meth:`acquire` / :meth:`release`.

    Args:
        work_dir (str | Path): the training's work dir; created when missing.
        logger (logging.Logger, optional): where takeovers of stale locks are reported (default:
            this module's logger). Pass the runner's logger to have them in the run's log.

    Example::

        with WorkDirLock(runner.work_dir, logger=runner.logger):
            runner.train()
    """

    def __init__(self, work_dir, logger=None):
        self.work_dir = osp.abspath(work_dir)
        self.path = osp.join(self.work_dir, LOCK_NAME)
        self.logger = logger or logging.getLogger(__name__)
        self._token = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()

    def acquire(self):
        """Take the work dir, or raise :class:`WorkDirLockedError` naming its live owner.

        Returns:
            WorkDirLock: self.
        """
        if self.is_held():
            return self
        os.makedirs(self.work_dir, exist_ok=True)
        token = secrets.token_hex(16)
        record = dict(pid=os.getpid(), host=socket.gethostname(), token=token,
                      started=datetime.datetime.now().astimezone().isoformat(timespec='seconds'))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # a retry follows a stale lock's removal, or a rival's
            if _create_new(self.path, json.dumps(record, indent=1) + '\n'):
                self._token = token
                _HELD[osp.realpath(self.work_dir)] = self
                return self
            content, age = _read(self.path)
            if content is None:
                continue  # released meanwhile
            owner = _parse(content)
            why_stale = self._judge(owner, age)
            self._remove_stale(content, why_stale)
        raise WorkDirLockedError(
            f'could not take the work dir {self.work_dir}: its lock file {self.path} keeps '
            f'changing, or its takeover guard {self.path}.takeover stays (several runs starting at '
            'once?). Give each run its own --work-dir.')

    def release(self):
        """Remove the lock file if it is still this lock's; a no-op otherwise."""
        if self.is_held():
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
        if _HELD.get(osp.realpath(self.work_dir)) is self:
            del _HELD[osp.realpath(self.work_dir)]
        self._token = None

    def is_held(self):
        """Whether the lock file is this lock's (acquired, not released, not taken over)."""
        if self._token is None:
            return False
        content, _ = _read(self.path)
        owner = _parse(content) if content is not None else None
        return owner is not None and owner.get('token') == self._token

    def _judge(self, owner, age):
        """Why the lock of ``owner`` is stale; raise :class:`WorkDirLockedError` if it is not."""
        delete = f'if you are sure that run is dead, delete {self.path}'
        if owner is None:
            if age >= UNREADABLE_STALE_AFTER_S:
                return f'its lock file is unreadable and untouched for {age:.0f} s'
            raise WorkDirLockedError(
                f'the work dir {self.work_dir} has an unreadable lock file {self.path}, written '
                f'{age:.0f} s ago: another training may be starting there. Wait, give this run '
                f'another --work-dir, or, {delete}.')
        pid, host, started = owner['pid'], owner['host'], owner.get('started', 'at an unknown time')
        here = socket.gethostname()
        if host != here:
            raise WorkDirLockedError(
                f'the work dir {self.work_dir} is locked by process {pid} on host {host}, started '
                f'{started}; whether it still runs cannot be checked from host {here} (a shared '
                f'file system). Wait for it to finish, give this run another --work-dir, or, '
                f'{delete}.')
        if pid == os.getpid():
            return 'this process holds it: an earlier run here ended without releasing it'
        if not pid_alive(pid):
            return f'its owner, process {pid} (started {started}), is no longer running'
        raise WorkDirLockedError(
            f'the work dir {self.work_dir} is in use by another training: process {pid} on host '
            f'{host}, started {started}. Two trainings in one work dir overwrite each other\'s '
            f'checkpoints. Wait for it to finish, give this run another --work-dir, or, {delete} '
            f'(its pid may have been reused).')

    def _remove_stale(self, content, why):
        """Remove the lock file if it still holds ``content``, the stale lock judged by ``why``.

        Takeovers go one at a time, under a guard file: a run that judged the same stale lock a
        moment later finds a new owner's lock in its place and leaves it. Returns at once when
        another run holds the guard (the caller then looks at the lock file again).
        """
        guard = self.path + '.takeover'
        if not _create_new(guard, f'{os.getpid()}@{socket.gethostname()}\n'):
            _, age = _read(guard)
            if age > GUARD_STALE_AFTER_S:  # its writer died in the middle of a takeover
                with contextlib.suppress(FileNotFoundError):
                    os.remove(guard)
            time.sleep(0.02)
            return
        try:
            if _read(self.path)[0] == content:
                os.remove(self.path)
                self.logger.warning(
                    f'took over the stale lock of the work dir {self.work_dir}: {why}')
        finally:
            os.remove(guard)


def _create_new(path, text):
    """Create the file ``path`` holding ``text``, never replacing one; False if it exists.

    Written under a private name, then hard-linked into place: nobody reads it half written.
    """
    private = f'{path}.{os.getpid()}.{secrets.token_hex(4)}.new'
    with open(private, 'w', encoding='utf-8') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(private, path)
        return True
    except FileExistsError:
        return False
    except OSError as err:  # no hard links here (some network and FUSE file systems)
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        return _create_exclusive(path, text)
    finally:
        os.remove(private)


def _create_exclusive(path, text):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return True


def _read(path):
    """(text or None if missing, seconds since the last change) of a lock file."""
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            age = time.time() - os.fstat(f.fileno()).st_mtime
            return f.read(), age
    except FileNotFoundError:
        return None, 0.0


def _parse(text):
    """The owner record in a lock file's text, or None when it is not one."""
    try:
        owner = json.loads(text)
    except ValueError:
        return None
    if (not isinstance(owner, dict) or not isinstance(owner.get('pid'), int)
            or not isinstance(owner.get('host'), str)):
        return None
    return owner
