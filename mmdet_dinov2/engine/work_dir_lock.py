"""One training per work dir: ``WORK_DIR/.train.lock``, a :class:`filelock.FileLock` (freed by the
kernel however its process ends) naming its owner; another host's record is refused (a shared file
system may not carry the lock). Stdlib and filelock only: a test loads it without mmdet."""
import datetime
import errno
import json
import logging
import os
import os.path as osp
import re
import socket

import filelock

LOCK_NAME = '.train.lock'

_HELD = {}  # realpath of a work dir -> the WorkDirLock of this process that holds it


class WorkDirLockedError(RuntimeError):
    """Another training holds (or may hold) the work dir, or its lock file cannot be used."""


def held_by_this_process(work_dir):
    """Whether a :class:`WorkDirLock` of this process holds the lock of ``work_dir`` now."""
    lock = _HELD.get(osp.realpath(work_dir))
    return lock is not None and lock.is_held()


class WorkDirLock:
    """The lock of one work dir (created when missing), as a context manager or with
    :meth:`acquire` / :meth:`release`; ``logger`` reports takeovers of locks left by dead runs."""

    def __init__(self, work_dir, logger=None):
        self.work_dir = osp.abspath(work_dir)
        self.path = osp.join(self.work_dir, LOCK_NAME)
        self.logger = logger or logging.getLogger(__name__)
        self._inode = None  # (st_dev, st_ino) of the lock file held
        # the lock is the process's: is_held() and release() must see it from any thread
        self._lock = filelock.FileLock(self.path, blocking=False, thread_local=False,
                                       on_acquired=self._claim)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()

    def acquire(self):
        """Take the work dir and return self, or raise WorkDirLockedError naming its owner."""
        if osp.lexists(self.work_dir) and not osp.isdir(self.work_dir):
            raise WorkDirLockedError(f'the work dir {self.work_dir} is not a directory; give '
                                     '--work-dir (work_dir) a directory, new or existing')
        if self.is_held():
            return self
        self.release()  # a kernel lock on a file someone deleted is let go
        os.makedirs(self.work_dir, exist_ok=True)
        earlier = _HELD.pop(osp.realpath(self.work_dir), None)
        if earlier is not None and earlier._lock.is_locked:
            earlier._lock.release()  # its record stays: _claim reports the takeover
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise WorkDirLockedError(self._busy()) from None
        except OSError as err:
            raise WorkDirLockedError(self._unusable(err)) from err
        _HELD[osp.realpath(self.work_dir)] = self
        return self

    def release(self):
        """Empty the lock file if it is still this lock's, then release the kernel lock."""
        if self.is_held():
            os.truncate(self.path, 0)
        if self._lock.is_locked:
            self._lock.release()
        if _HELD.get(osp.realpath(self.work_dir)) is self:
            del _HELD[osp.realpath(self.work_dir)]

    def is_held(self):
        """Whether this lock holds the kernel lock on the file that is at its path now."""
        try:
            now = os.lstat(self.path)
        except FileNotFoundError:
            return False
        return self._lock.is_locked and (now.st_dev, now.st_ino) == self._inode

    def _claim(self, fd):
        """filelock's callback with the locked file: judge the record left there, write ours."""
        left = os.pread(fd, 4096, 0).decode('utf-8', errors='replace')
        owner, here = _parse(left), socket.gethostname()
        if owner is not None and owner['host'] != here:  # raising makes filelock release it
            raise WorkDirLockedError(
                f'the work dir {self.work_dir} is locked by process {owner["pid"]} on host '
                f'{owner["host"]}, started {owner["started"]}; whether it still runs cannot be '
                f'checked from host {here} (a shared file system). Wait for it to finish, give '
                f'this run another --work-dir, or, if you are sure that run is dead, delete '
                f'{self.path}.')
        if left.strip():  # a clean release leaves the file empty
            why = ('this process holds it: an earlier run here ended without releasing it'
                   if owner is not None and owner['pid'] == os.getpid() else
                   f'its owner, process {owner["pid"]} (started {owner["started"]}), is no longer '
                   'running' if owner is not None else
                   f'its record {left[:60]!r} names no possible process id and its writer is '
                   'gone' if re.match(r'\{"pid": [^,]+, "host"', left) else
                   f'its record {left[:40]!r} is unreadable and its writer is gone')
            self.logger.warning(f'took over the stale lock of the work dir {self.work_dir}: {why}')
        record = dict(pid=os.getpid(), host=here,
                      started=datetime.datetime.now().astimezone().isoformat(timespec='seconds'))
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + '\n').encode(), 0)
        info = os.fstat(fd)
        self._inode = (info.st_dev, info.st_ino)

    def _busy(self):
        try:
            with open(self.path, encoding='utf-8', errors='replace') as f:
                owner = _parse(f.read())
        except OSError:
            owner = None
        who = (f'process {owner["pid"]} on host {owner["host"]}, started {owner["started"]}'
               if owner is not None else 'a process that has not written its record yet')
        return (f'the work dir {self.work_dir} is in use by another training: {who}. Two '
                'trainings in one work dir overwrite each other\'s checkpoints. Wait for it to '
                'finish, or give this run another --work-dir.')

    def _unusable(self, err):
        if err.errno in (errno.EISDIR, errno.ELOOP):  # filelock opens it with O_NOFOLLOW
            what = ('a directory' if err.errno == errno.EISDIR
                    else f'a symbolic link (to {os.readlink(self.path)})')
            return (f'cannot take the work dir {self.work_dir}: its lock file {self.path} is '
                    f'{what}, not a plain file. Remove it if no training uses it, or give this '
                    'run another --work-dir.')
        return (f'cannot take the work dir {self.work_dir}: locking {self.path} failed ({err}). '
                'Put the work dir on a file system with file locks (flock), e.g. a local disk, '
                'or give this run another --work-dir.')


def _parse(text):
    """The owner record in a lock file's text, or None when it is not one."""
    try:
        owner = json.loads(text)
    except ValueError:
        return None
    if isinstance(owner, dict) and type(owner.get('pid')) is int and 'host' in owner \
            and 0 < owner['pid'] <= _pid_max():
        return {'started': 'at an unknown time', **owner}
    return None


def _pid_max():
    """The largest process id of this system (Linux's file; else Linux's own largest)."""
    try:
        with open('/proc/sys/kernel/pid_max') as f:
            return int(f.read())
    except (OSError, ValueError):
        return 2**22
