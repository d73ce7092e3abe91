"""Faults during training: kill -9 mid-run and mid-save, a full disk, a NaN loss, a dead rank."""
import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, build_runner, tiny_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('plain_config_text', 'one_thread')]
# the hooks that kill a training subprocess, loaded there through custom_imports
FAULTS = dict(imports=['mmdet_dinov2', 'tests.engine.fault_injection'], allow_failed_imports=False)


def losses_by_iter(work_dir):
    """{iteration: {loss name: value}} from every run (log folder) in ``work_dir``."""
    found = {}
    for scalars in sorted(Path(work_dir).glob('*/vis_data/scalars.json')):
        for line in scalars.read_text().splitlines():
            record = json.loads(line)
            if 'loss' in record:
                found[record['iter']] = {k: v for k, v in record.items() if k.startswith('loss')}
    return found


def max_difference(reference, resumed):
    return max(abs(reference[i][key] - value)
               for i, losses in resumed.items() for key, value in losses.items())


def fault_config(data, work_dir, extra_hooks=(), **options):
    """Write a config file (the tiny config, three epochs, validation after each) for tools/."""
    cfg = tiny_config(data, work_dir, **{'train_cfg.max_epochs': 3, 'train_cfg.val_interval': 1,
                                           **options})
    cfg.custom_imports = dict(FAULTS)
    cfg.custom_hooks = list(cfg.custom_hooks) + list(extra_hooks)
    path = Path(work_dir).with_suffix('.py')
    cfg.dump(str(path))
    return path


def start_training(config, *args):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    return subprocess.Popen([sys.executable, 'tools/train.py', str(config), *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process, timeout=300):
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


@pytest.fixture(scope='module')
def killed_runs(tiny_data, tmp_path_factory):
    """An uninterrupted run, a run killed in epoch 2, a run killed while saving epoch 2's
    checkpoint (each run in its own process), then both killed runs resumed with --resume."""
    root = tmp_path_factory.mktemp('faults')
    dirs = {name: root / name for name in ('full', 'killed', 'killed_in_save')}
    configs = {
        'full': fault_config(tiny_data, dirs['full']),
        'killed': fault_config(tiny_data, dirs['killed'],
                               [dict(type='SigkillAtIterHook', at_iter=3)]),
        'killed_in_save': fault_config(tiny_data, dirs['killed_in_save'],
                                       [dict(type='SigkillDuringSaveHook', at_epoch=2)]),
    }
    first = {name: start_training(config) for name, config in configs.items()}
    outcome = {name: finish(process) for name, process in first.items()}
    on_disk = {name: sorted(p.name for p in dirs[name].iterdir()) for name in dirs}
    pointers = {name: (dirs[name] / 'last_checkpoint').read_text() for name in dirs}
    # resume with the same config minus the fault
    resumed = {}
    for name in ('killed', 'killed_in_save'):
        resumed[name] = start_training(fault_config(tiny_data, dirs[name]), '--resume')
    resumed = {name: finish(process) for name, process in resumed.items()}
    return dict(dirs=dirs, outcome=outcome, on_disk=on_disk, pointers=pointers, resumed=resumed)


def test_kill_during_training_then_resume_repeats_the_uninterrupted_losses(killed_runs):
    rc, output = killed_runs['outcome']['full']
    assert rc == 0, output[-3000:]
    assert killed_runs['outcome']['killed'][0] == -signal.SIGKILL
    rc, output = killed_runs['resumed']['killed']
    assert rc == 0, output[-3000:]
    assert 'resumed epoch: 1, iter: 2' in output
    full = losses_by_iter(killed_runs['dirs']['full'])
    runs = losses_by_iter(killed_runs['dirs']['killed'])
    assert sorted(full) == [1, 2, 3, 4, 5, 6] and sorted(runs) == [1, 2, 3, 4, 5, 6]
    resumed = {i: runs[i] for i in (3, 4, 5, 6)}
    difference = max_difference(full, resumed)
    print(f'kill -9 at iteration 4, resumed from epoch 1: max |loss difference| over '
          f'iterations 3-6 and all loss terms = {difference}')
    assert difference == 0.0


def test_kill_during_checkpoint_save_keeps_the_previous_checkpoint(killed_runs):
    work_dir = killed_runs['dirs']['killed_in_save']
    assert killed_runs['outcome']['killed_in_save'][0] == -signal.SIGKILL
    files = killed_runs['on_disk']['killed_in_save']
    # the half-written checkpoint is a hidden temporary file, never epoch_2.pth itself
    assert 'epoch_1.pth' in files and 'epoch_2.pth' not in files
    assert any(name.startswith('.epoch_2.pth.') and name.endswith('.tmp') for name in files)
    assert killed_runs['pointers']['killed_in_save'] == str(work_dir / 'epoch_1.pth')
    rc, output = killed_runs['resumed']['killed_in_save']
    assert rc == 0, output[-3000:]
    assert 'removed 1 temporary file(s)' in output
    assert not list(work_dir.glob('.*.tmp'))
    full = losses_by_iter(killed_runs['dirs']['full'])
    resumed = losses_by_iter(work_dir)
    assert max_difference(full, {i: resumed[i] for i in (3, 4, 5, 6)}) == 0.0
    # max_keep_ckpts=2: the oldest checkpoint went only after the newer ones were complete
    assert sorted(p.name for p in work_dir.glob('epoch_*.pth')) == ['epoch_2.pth', 'epoch_3.pth']
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'epoch_3.pth')


def test_full_disk_during_save_is_reported_and_the_previous_checkpoint_survives(
        tiny_data, tmp_path, monkeypatch):
    from mmdet_dinov2.checkpoints import load_state_dict_file
    from mmdet_dinov2.engine.hooks import CheckpointSaveError
    from mmdet_dinov2.utils import atomic_file

    real_open = atomic_file.atomic_open

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[:len(data) // 3])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def open_on_full_disk(path, mode='wb', encoding=None):
        if not str(path).endswith('epoch_2.pth'):
            return real_open(path, mode, encoding)
        return _wrapping(real_open(path, mode, encoding), FullDisk)

    monkeypatch.setattr(atomic_file, 'atomic_open', open_on_full_disk)
    work_dir = tmp_path / 'work'
    runner = build_runner(tiny_config(tiny_data, work_dir, **{'train_cfg.max_epochs': 2}))
    with pytest.raises(CheckpointSaveError) as error:
        runner.train()
    message = str(error.value)
    assert str(work_dir / 'epoch_2.pth') in message and 'the disk is full' in message
    assert f'the previous checkpoint {work_dir / "epoch_1.pth"} is intact' in message
    assert sorted(p.name for p in work_dir.iterdir() if p.suffix in ('.pth', '.tmp')) == [
        'epoch_1.pth']
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'epoch_1.pth')
    assert all(torch.isfinite(t).all() for t in
               load_state_dict_file(work_dir / 'epoch_1.pth').values() if t.is_floating_point())


def _wrapping(context, wrapper):
    import contextlib

    @contextlib.contextmanager
    def wrapped():
        with context as f:
            yield wrapper(f)
    return wrapped()


def test_nan_loss_stops_with_the_iteration_the_term_and_the_last_good_checkpoint(
        tiny_data, tmp_path):
    from mmdet.registry import HOOKS
    from mmengine.hooks import Hook

    from mmdet_dinov2.engine.hooks import NonFiniteLossError

    @HOOKS.register_module(force=True)
    class PoisonClassifierHook(Hook):
        """NaN into the box classifier's weights before the third iteration."""

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if runner.iter == 2:
                runner.model.roi_head.bbox_head.fc_cls.weight.data.fill_(math.nan)

    work_dir = tmp_path / 'work'
    cfg = tiny_config(tiny_data, work_dir, **{'train_cfg.max_epochs': 3})
    cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='PoisonClassifierHook')]
    runner = build_runner(cfg)
    with pytest.raises(NonFiniteLossError) as error:
        runner.train()
    message = str(error.value)
    assert 'non-finite loss at iteration 3 (epoch 2): ' in message
    assert 'loss_cls=nan' in message and 'loss_mask' not in message
    assert f'Last good checkpoint: {work_dir / "epoch_1.pth"} (resume with --resume)' in message
    assert not (work_dir / 'epoch_2.pth').exists()


def child_pids(pid):
    """The processes whose parent is ``pid`` (from /proc)."""
    children = []
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def local_rank(pid):
    environ = Path(f'/proc/{pid}/environ').read_bytes().split(b'\0')
    return next(int(v.split(b'=')[1]) for v in environ if v.startswith(b'LOCAL_RANK='))


def test_dist_train_with_a_killed_rank_stops_the_other_with_the_cause(tiny_data, tmp_path):
    work_dir = tmp_path / 'work'
    cfg = tiny_config(tiny_data, work_dir, **{'train_cfg.max_epochs': 500,
                                                'train_cfg.val_interval': 1000})
    cfg.custom_imports = dict(FAULTS)
    cfg.dump(str(tmp_path / 'dist.py'))
    env = dict(os.environ, OMP_NUM_THREADS='1', PORT=str(29500 + os.getpid() % 1000))
    torchrun = subprocess.Popen(['bash', 'tools/dist_train.sh', str(tmp_path / 'dist.py'), '2'],
                                cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 240
        while not any('Epoch(train)' in log.read_text() for log in work_dir.glob('*/*.log')):
            assert torchrun.poll() is None and time.time() < deadline, torchrun.stdout.read()
            time.sleep(0.5)
        ranks = {local_rank(pid): pid for pid in child_pids(torchrun.pid)}
        assert sorted(ranks) == [0, 1]
        os.kill(ranks[1], signal.SIGKILL)
        killed_at = time.time()
        output, _ = torchrun.communicate(timeout=60)
    finally:
        if torchrun.poll() is None:
            torchrun.kill()
    assert time.time() - killed_at < 60
    assert torchrun.returncode != 0
    assert 'Root Cause (first observed failure)' in output
    assert f'Signal 9 (SIGKILL) received by PID {ranks[1]}' in output
    assert not Path(f'/proc/{ranks[0]}').exists()
