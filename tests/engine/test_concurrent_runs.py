"""Runs side by side: a run starting in a work dir where another run's checkpoint save is in flight,
and tools/test.py --out checked before the evaluation instead of failing after it."""
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mmdet_dinov2.utils import atomic_file
from tests.helpers import TINY_CONFIG, load_tool

# A process that loads atomic_file by its path (no mmdet import), starts an atomic write of
# TARGET, and then either is killed in the middle of it ('die') or finishes once stdin closes.
WRITER = '''
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location('atomic_file', sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
with module.atomic_open(sys.argv[2], 'wb') as f:
    f.write(b'first half')
    f.flush()
    print('writing', flush=True)
    if sys.argv[3] == 'die':
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.read()
    f.write(b', second half')
'''


def writer(target, fate):
    process = subprocess.Popen([sys.executable, '-c', WRITER, atomic_file.__file__, str(target),
                                fate], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == 'writing'
    return process


def temps(folder):
    return sorted(p.name for p in folder.glob('.*.tmp'))


def start_run(work_dir):
    """What a new training's AtomicCheckpointHook does when it starts in ``work_dir``."""
    from mmengine.logging import MessageHub

    from mmdet_dinov2.engine.hooks import AtomicCheckpointHook
    runner = SimpleNamespace(work_dir=str(work_dir), logger=logging.getLogger('new_run'),
                             message_hub=MessageHub.get_instance(f'new_run_{id(work_dir)}'))
    AtomicCheckpointHook(interval=1).before_train(runner)


@pytest.mark.parametrize('locked', [False, True], ids=['without', 'under the work-dir lock'])
def test_a_new_run_keeps_a_live_runs_save_in_flight_and_removes_a_dead_ones(
        tmp_path, caplog, locked):
    from mmdet_dinov2.engine.work_dir_lock import WorkDirLock
    work_dir = tmp_path / 'work'
    killed = writer(work_dir / 'epoch_1.pth', 'die')
    assert killed.wait(timeout=30) == -9
    dead_temp = temps(work_dir)
    assert len(dead_temp) == 1 and f'.{killed.pid}@' in dead_temp[0]
    live = writer(work_dir / 'epoch_2.pth', 'finish')
    try:
        live_temp = sorted(set(temps(work_dir)) - set(dead_temp))
        with caplog.at_level(logging.INFO), (WorkDirLock(work_dir) if locked
                                             else contextlib.nullcontext()):
            start_run(work_dir)
        assert temps(work_dir) == live_temp
        assert f'removed 1 temporary file(s) left in {work_dir}' in caplog.text
    finally:
        live.stdin.close()
        assert live.wait(timeout=30) == 0
    assert (work_dir / 'epoch_2.pth').read_bytes() == b'first half, second half'
    assert temps(work_dir) == [] and not (work_dir / 'epoch_1.pth').exists()


def test_temps_of_unknown_writers_are_removed_only_under_the_work_dir_lock(tmp_path, caplog):
    from mmdet_dinov2.engine.work_dir_lock import WorkDirLock
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    assert atomic_file.host_name() == socket.gethostname()  # plain host names stay as they are
    unknown = ['.epoch_3.pth.4242@gpu-node-17.k3j_x9.tmp',  # another host: its pid says nothing
               '.epoch_3.pth.q1w2e3r4.tmp']  # an older naming: the name does not carry the writer
    for name in unknown:
        (work_dir / name).write_bytes(b'partial')
    with caplog.at_level(logging.INFO):
        start_run(work_dir)
    assert temps(work_dir) == sorted(unknown)
    assert (f'kept 2 temporary file(s) in {work_dir} whose writer cannot be checked from here '
            f'(another host, or an older naming): {", ".join(sorted(unknown))}') in caplog.text
    with WorkDirLock(work_dir):  # no other training writes here: they are left by dead runs
        start_run(work_dir)
    assert temps(work_dir) == []


def test_temp_names_carry_the_writer(tmp_path):
    with atomic_file.atomic_open(tmp_path / 'epoch_1.pth.2'):
        name, = temps(tmp_path)
        assert atomic_file.temp_writer(name) == (os.getpid(), atomic_file.host_name())
    assert atomic_file.temp_writer('.epoch_1.pth.12@a.b-c.x_y1.tmp') == (12, 'a.b-c')
    for name in ('.epoch_1.pth.q1w2e3r4.tmp', '.train.lock.12.ab.new', 'epoch_1.pth'):
        assert atomic_file.temp_writer(name) is None


def test_pid_alive():
    from mmdet_dinov2.engine.hooks.atomic_checkpoint_hook import pid_alive
    exited = subprocess.Popen([sys.executable, '-c', 'pass'])
    exited.wait()
    assert pid_alive(os.getpid()) and not pid_alive(exited.pid) and not pid_alive(0)
    assert not pid_alive(2**70)  # a temp file named by a pid no process can have
    zombie = subprocess.Popen([sys.executable, '-c', 'pass'])
    stat = Path(f'/proc/{zombie.pid}/stat')
    for _ in range(200):  # exited but not reaped (no wait yet)
        if not stat.exists() or stat.read_text().rsplit(')', 1)[1].split()[0] == 'Z':
            break
        time.sleep(0.05)
    assert not pid_alive(zombie.pid)
    zombie.wait()


# ------------------------------------------------------------------ tools/test.py --out
@pytest.mark.parametrize('where, reason', [
    ('notes.txt/preds.pkl', '{tmp}/notes.txt is not a directory'),
    ('notes.txt/sub/preds.pkl', '{tmp}/notes.txt is not a directory'),
    ('preds.pkl', 'it is a directory'),
    ('/proc/no_such/preds.pkl', 'cannot create files in /proc'),
], ids=['under a file', 'deeper under a file', 'a directory', 'in /proc'])
def test_test_tool_refuses_an_unwritable_out_before_building_anything(
        tmp_path, monkeypatch, capsys, where, reason):
    tool = load_tool('tools/test.py')

    def must_not_run(*args, **kwargs):
        raise AssertionError('--out must be checked before the config is read')

    monkeypatch.setattr(tool, 'load_config', must_not_run)
    monkeypatch.setattr(tool, 'build_runner', must_not_run)
    (tmp_path / 'notes.txt').write_text('not a folder')
    (tmp_path / 'preds.pkl').mkdir()
    (tmp_path / 'w.pth').write_bytes(b'x')
    out = where if where.startswith('/') else str(tmp_path / where)
    with pytest.raises(SystemExit) as exit_:
        tool.main([TINY_CONFIG, str(tmp_path / 'w.pth'), '--out', out])
    assert exit_.value.code == 2
    message = capsys.readouterr().err
    assert (f'--out {out}: cannot write the predictions there: '
            f'{reason.format(tmp=tmp_path)}') in message


def test_test_tool_accepts_an_out_whose_folders_it_can_create(tmp_path):
    tool = load_tool('tools/test.py')
    out = tmp_path / 'new' / 'sub' / 'preds.pkl'
    args = tool.parse_args([TINY_CONFIG, 'w.pth', '--out', str(out)])
    assert args.out == str(out)
    assert list(tmp_path.iterdir()) == []  # the probe file is gone, nothing was created
