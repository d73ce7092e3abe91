"""WorkDirLock: one training per work dir. A live owner is refused with who holds it and what to do;
a dead owner (another process, or this one) never blocks; a record from another host is refused;
a lock file that is a directory or a link, or a file system without locks, is named as such.
SafeLoadRunner can take the lock before it writes anything into the work dir."""
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import filelock
import pytest

from mmdet_dinov2.engine import work_dir_lock
from mmdet_dinov2.engine.work_dir_lock import (LOCK_NAME, WorkDirLock, WorkDirLockedError,
                                               held_by_this_process)

ROOT = Path(__file__).resolve().parents[2]

# A process that loads the lock module by its path (no mmdet import: starts in a blink), tries to
# take WORK_DIR, prints 'won' or 'refused', and holds what it won until its stdin closes.
CONTENDER = '''
import importlib.util, sys
spec = importlib.util.spec_from_file_location('work_dir_lock', sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
try:
    lock = module.WorkDirLock(sys.argv[2]).acquire()
except module.WorkDirLockedError:
    print('refused', flush=True)
else:
    print('won', flush=True)
sys.stdin.read()
'''


def contender(work_dir):
    return subprocess.Popen(
        [sys.executable, '-c', CONTENDER, work_dir_lock.__file__, str(work_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def dead_pid():
    """The pid of a process of this host that has exited (and was reaped)."""
    process = subprocess.Popen([sys.executable, '-c', 'pass'])
    process.wait()
    return process.pid


def write_lock(work_dir, **owner):
    """A lock file as a run that died without releasing leaves it (no process holds the lock)."""
    record = dict(pid=owner.get('pid', 1), host=owner.get('host', socket.gethostname()),
                  started='2026-01-02T03:04:05+00:00')
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / LOCK_NAME).write_text(json.dumps(record))
    return record


def test_acquire_records_the_owner_and_release_clears_it(tmp_path, caplog):
    work_dir = tmp_path / 'new' / 'work'
    with WorkDirLock(work_dir) as lock:
        owner = json.loads((work_dir / LOCK_NAME).read_text())
        assert owner['pid'] == os.getpid() and owner['host'] == socket.gethostname()
        assert owner['started'][:4].isdigit()
        assert lock.is_held() and held_by_this_process(work_dir)
        assert lock.acquire() is lock  # acquiring what it holds changes nothing
        assert sorted(p.name for p in work_dir.iterdir()) == [LOCK_NAME]
    # the file stays (filelock keeps one inode for every contender), without an owner
    assert (work_dir / LOCK_NAME).read_text() == ''
    assert not held_by_this_process(work_dir) and not lock.is_held()
    lock.release()  # twice is harmless
    with caplog.at_level(logging.WARNING), WorkDirLock(work_dir):
        pass
    assert caplog.text == ''  # a cleanly released lock is not a takeover


def test_a_live_owner_in_another_process_is_refused_until_it_dies(tmp_path, caplog):
    work_dir = tmp_path / 'work'
    holder = contender(work_dir)
    try:
        assert holder.stdout.readline().strip() == 'won'
        before = (work_dir / LOCK_NAME).read_text()
        with pytest.raises(WorkDirLockedError) as error:
            WorkDirLock(work_dir).acquire()
        message = str(error.value)
        assert f'{work_dir} is in use by another training: process {holder.pid} on host ' \
               f'{socket.gethostname()}, started 20' in message
        assert 'another --work-dir' in message
        assert (work_dir / LOCK_NAME).read_text() == before
    finally:
        holder.kill()  # SIGKILL: no release, the kernel drops its lock
        holder.wait()
    with caplog.at_level(logging.WARNING), WorkDirLock(work_dir):
        assert held_by_this_process(work_dir)
    assert f'process {holder.pid} (started 20' in caplog.text
    assert 'is no longer running' in caplog.text


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, caplog):
    pid = dead_pid()
    write_lock(tmp_path, pid=pid)
    with caplog.at_level(logging.WARNING), WorkDirLock(tmp_path) as lock:
        assert json.loads((tmp_path / LOCK_NAME).read_text())['pid'] == os.getpid()
        assert lock.is_held()
    assert f'took over the stale lock of the work dir {tmp_path}: its owner, process {pid}' \
        in caplog.text


def test_a_lock_from_another_host_is_refused(tmp_path):
    record = write_lock(tmp_path, pid=dead_pid(), host='gpu-node-17')
    lock = WorkDirLock(tmp_path)
    with pytest.raises(WorkDirLockedError) as error:
        lock.acquire()
    message = str(error.value)
    assert f'locked by process {record["pid"]} on host gpu-node-17, started 2026-01-02' in message
    assert f'cannot be checked from host {socket.gethostname()}' in message
    assert f'delete {tmp_path / LOCK_NAME}' in message
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == record
    assert not lock.is_held() and not held_by_this_process(tmp_path)
    with filelock.FileLock(tmp_path / LOCK_NAME, blocking=False):
        pass  # the refusal released the kernel lock it had taken


def test_an_unreadable_lock_without_a_holder_is_taken_over(tmp_path, caplog):
    path = tmp_path / LOCK_NAME
    path.write_bytes(b'\x00\x17{"pid"')
    with caplog.at_level(logging.WARNING), WorkDirLock(tmp_path):
        assert json.loads(path.read_text())['pid'] == os.getpid()
    assert 'is unreadable and its writer is gone' in caplog.text


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path):
    lock = WorkDirLock(tmp_path).acquire()
    (tmp_path / LOCK_NAME).unlink()  # someone deleted our lock by hand ...
    holder = contender(tmp_path)  # ... and another run took the work dir
    try:
        assert holder.stdout.readline().strip() == 'won'
        assert not lock.is_held() and not held_by_this_process(tmp_path)
        lock.release()
        assert json.loads((tmp_path / LOCK_NAME).read_text())['pid'] == holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_this_process_takes_over_a_lock_an_earlier_run_here_left(tmp_path, caplog):
    earlier = WorkDirLock(tmp_path).acquire()  # that run raised before releasing
    with caplog.at_level(logging.WARNING), WorkDirLock(tmp_path) as lock:
        assert 'this process holds it: an earlier run here ended without releasing' in caplog.text
        assert lock.is_held() and not earlier.is_held()
        earlier.release()  # late clean-up of the earlier run: not its lock any more
        assert json.loads((tmp_path / LOCK_NAME).read_text())['pid'] == os.getpid()
        assert lock.is_held() and held_by_this_process(tmp_path)
    assert (tmp_path / LOCK_NAME).read_text() == ''


@pytest.mark.parametrize('left', ['nothing', 'a dead owner'])
def test_of_several_processes_starting_at_once_exactly_one_wins(tmp_path, left):
    if left == 'a dead owner':
        write_lock(tmp_path, pid=dead_pid())
    contenders = [contender(tmp_path) for _ in range(4)]
    try:
        outcomes = sorted(c.stdout.readline().strip() for c in contenders)
        winner = json.loads((tmp_path / LOCK_NAME).read_text())['pid']
    finally:
        for c in contenders:
            c.stdin.close()
            c.wait(timeout=30)
    assert outcomes == ['refused', 'refused', 'refused', 'won']
    assert winner in [c.pid for c in contenders]
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]  # no private files left


@pytest.mark.parametrize('kind', ['directory', 'dangling link', 'link to a file'])
def test_a_lock_file_that_is_not_a_plain_file_is_named(tmp_path, kind):
    path = tmp_path / LOCK_NAME
    if kind == 'directory':
        path.mkdir()
    else:
        target = tmp_path / 'target'
        if kind == 'link to a file':
            target.write_text('')
        path.symlink_to(target)
    with pytest.raises(WorkDirLockedError) as error:
        WorkDirLock(tmp_path).acquire()
    what = 'a directory' if kind == 'directory' else f'a symbolic link (to {tmp_path / "target"})'
    assert (f'cannot take the work dir {tmp_path}: its lock file {path} is {what}, not a plain '
            'file. Remove it if no training uses it') in str(error.value)
    assert not held_by_this_process(tmp_path)


@pytest.mark.parametrize('pid', [2**70, 0, -5, True, 'pid_max + 1'])
def test_a_record_naming_no_possible_process_is_taken_over_as_unreadable(tmp_path, caplog, pid):
    if pid == 'pid_max + 1':
        pid = work_dir_lock._pid_max() + 1
    path = tmp_path / LOCK_NAME
    path.write_text(json.dumps(dict(pid=pid, host=socket.gethostname())))
    with caplog.at_level(logging.WARNING), WorkDirLock(tmp_path):
        assert json.loads(path.read_text())['pid'] == os.getpid()
    assert f"its record '{{\"pid\": {json.dumps(pid)}" in caplog.text
    assert 'names no possible process id and its writer is gone' in caplog.text
    assert 'is no longer running' not in caplog.text


def test_a_work_dir_that_is_a_file_is_named(tmp_path):
    (tmp_path / 'work').write_text('notes')
    with pytest.raises(WorkDirLockedError, match=f'the work dir {tmp_path / "work"} is not a '
                                                 'directory; give --work-dir'):
        WorkDirLock(tmp_path / 'work').acquire()
    assert (tmp_path / 'work').read_text() == 'notes'


def test_a_file_system_without_file_locks_is_named(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_flock(fd, operation):
        raise OSError(errno.ENOSYS, 'Function not implemented')

    monkeypatch.setattr(fcntl, 'flock', no_flock)
    with pytest.raises(WorkDirLockedError, match=r'locking .*\.train\.lock failed \(\[Errno 38\].*'
                                                 r'a file system with file locks \(flock\)'):
        WorkDirLock(tmp_path).acquire()


# ------------------------------------------------------------------ SafeLoadRunner
def _tiny_runner_cfg(work_dir, **options):
    from mmengine.config import Config
    cfg = Config.fromfile(str(ROOT / 'tests' / 'tools' / 'tiny_config.py'))
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict(options)
    return cfg


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob('*'))}


def test_a_refused_run_leaves_the_running_ones_files_as_they_are(tmp_path):
    import mmdet_dinov2  # noqa: F401  (registers the runner)
    from mmdet.registry import RUNNERS
    work_dir = tmp_path / 'work'
    holder = contender(work_dir)
    try:
        assert holder.stdout.readline().strip() == 'won'
        # what the running training wrote: its config copy, log folder, checkpoint
        (work_dir / 'tiny_config.py').write_text('# the running training\'s config\n')
        (work_dir / '20260102_030405').mkdir()
        (work_dir / '20260102_030405' / '20260102_030405.log').write_text('epoch 1\n')
        (work_dir / 'epoch_1.pth').write_bytes(b'weights')
        before = _files(work_dir)
        with pytest.raises(WorkDirLockedError, match=f'in use by another training: process '
                                                     f'{holder.pid} '):
            RUNNERS.build(_tiny_runner_cfg(work_dir, lock_work_dir_at_build=True))
        assert _files(work_dir) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_runner_locked_at_build_holds_the_lock_until_training_ends(tmp_path, monkeypatch):
    import mmdet_dinov2  # noqa: F401
    from mmengine.runner import Runner
    from mmdet.registry import RUNNERS
    work_dir = tmp_path / 'work'
    runner = RUNNERS.build(_tiny_runner_cfg(work_dir, lock_work_dir_at_build=True))
    assert held_by_this_process(work_dir)
    assert 'lock_work_dir_at_build' not in (work_dir / 'tiny_config.py').read_text()

    def train(self):
        assert held_by_this_process(work_dir)
        return 'trained'

    monkeypatch.setattr(Runner, 'train', train)
    assert runner.train() == 'trained'
    assert not held_by_this_process(work_dir) and (work_dir / LOCK_NAME).read_text() == ''
