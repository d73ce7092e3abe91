"""WorkDirLock: one training per work dir; stale owners (dead, this process, unreadable) taken over,
live or unjudgeable ones (another host) refused with who holds it and what to do."""
import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmdet_dinov2.engine import work_dir_lock
from mmdet_dinov2.engine.work_dir_lock import (LOCK_NAME, WorkDirLock, WorkDirLockedError,
                                               held_by_this_process, pid_alive)

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
    record = dict(pid=owner.get('pid', 1), host=owner.get('host', socket.gethostname()),
                  started='2026-01-02T03:04:05+00:00', token='theirs')
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / LOCK_NAME).write_text(json.dumps(record))
    return record


def test_acquire_records_the_owner_and_release_removes_the_lock(tmp_path):
    work_dir = tmp_path / 'new' / 'work'
    with WorkDirLock(work_dir) as lock:
        owner = json.loads((work_dir / LOCK_NAME).read_text())
        assert owner['pid'] == os.getpid() and owner['host'] == socket.gethostname()
        assert owner['started'][:4].isdigit()
        assert lock.is_held() and held_by_this_process(work_dir)
        assert lock.acquire() is lock  # acquiring what it holds changes nothing
        assert sorted(p.name for p in work_dir.iterdir()) == [LOCK_NAME]
    assert not (work_dir / LOCK_NAME).exists()
    assert not held_by_this_process(work_dir) and not lock.is_held()
    lock.release()  # twice is harmless


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
        assert 'another --work-dir' in message and f'delete {work_dir / LOCK_NAME}' in message
        assert (work_dir / LOCK_NAME).read_text() == before
    finally:
        holder.kill()
        holder.wait()
    with caplog.at_level(logging.WARNING), WorkDirLock(work_dir):
        assert held_by_this_process(work_dir)
    assert f'process {holder.pid} (started 20' in caplog.text
    assert 'is no longer running' in caplog.text


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, caplog):
    pid = dead_pid()
    assert not pid_alive(pid)
    write_lock(tmp_path, pid=pid)
    with caplog.at_level(logging.WARNING), WorkDirLock(tmp_path) as lock:
        assert json.loads((tmp_path / LOCK_NAME).read_text())['pid'] == os.getpid()
        assert lock.is_held()
    assert f'took over the stale lock of the work dir {tmp_path}: its owner, process {pid}' \
        in caplog.text


def test_a_lock_from_another_host_is_refused(tmp_path):
    record = write_lock(tmp_path, pid=dead_pid(), host='gpu-node-17')
    with pytest.raises(WorkDirLockedError) as error:
        WorkDirLock(tmp_path).acquire()
    message = str(error.value)
    assert f'locked by process {record["pid"]} on host gpu-node-17, started 2026-01-02' in message
    assert f'cannot be checked from host {socket.gethostname()}' in message
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == record


def test_an_unreadable_lock_is_taken_over_only_once_it_is_old(tmp_path):
    path = tmp_path / LOCK_NAME
    path.write_bytes(b'\x00\x17{"pid"')
    with pytest.raises(WorkDirLockedError, match='has an unreadable lock file .* another '
                                                 'training may be starting there'):
        WorkDirLock(tmp_path).acquire()
    old = time.time() - work_dir_lock.UNREADABLE_STALE_AFTER_S - 5
    os.utime(path, (old, old))
    with WorkDirLock(tmp_path):
        assert json.loads(path.read_text())['pid'] == os.getpid()


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path):
    lock = WorkDirLock(tmp_path).acquire()
    # someone deleted our lock by hand and another run took the work dir
    record = write_lock(tmp_path, pid=os.getppid())
    assert not lock.is_held() and not held_by_this_process(tmp_path)
    lock.release()
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == record


def test_this_process_takes_over_a_lock_an_earlier_run_here_left(tmp_path, caplog):
    earlier = WorkDirLock(tmp_path).acquire()  # that run raised before releasing
    with caplog.at_level(logging.WARNING), WorkDirLock(tmp_path) as lock:
        assert 'this process holds it: an earlier run here ended without releasing' in caplog.text
        assert lock.is_held() and not earlier.is_held()
        earlier.release()  # late clean-up of the earlier run: not its lock any more
        assert (tmp_path / LOCK_NAME).exists() and held_by_this_process(tmp_path)
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.parametrize('left', ['nothing', 'a dead owner'])
def test_of_several_processes_starting_at_once_exactly_one_wins(tmp_path, left):
    if left == 'a dead owner':  # every contender judges it stale and tries to remove it
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


def test_pid_alive(tmp_path):
    assert pid_alive(os.getpid()) and not pid_alive(dead_pid()) and not pid_alive(0)
    zombie = subprocess.Popen([sys.executable, '-c', 'pass'])
    stat = Path(f'/proc/{zombie.pid}/stat')
    for _ in range(200):  # exited but not reaped (no wait yet)
        if not stat.exists() or stat.read_text().rsplit(')', 1)[1].split()[0] == 'Z':
            break
        time.sleep(0.05)
    assert not pid_alive(zombie.pid)
    zombie.wait()
