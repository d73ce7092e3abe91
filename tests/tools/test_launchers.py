"""tools/dist_{train,test}.sh and tools/slurm_{train,test}.sh: the command each starts, with echo
standing in for python and srun (the real runs are in test_train_test.py and test_faults.py)."""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = ('-m torch.distributed.run --nnodes=1 --node_rank=0 --nproc_per_node=2 '
            '--master_addr=127.0.0.1 --master_port=29500')
SRUN = ('-p part --job-name=job --gres=gpu:8 --ntasks=8 --ntasks-per-node=8 --cpus-per-task=5 '
        '--kill-on-bad-exit=1 py -u')


def launch(script, *args, tmp_path):
    (tmp_path / 'srun').write_text('#!/bin/sh\necho "$@"\n')
    (tmp_path / 'srun').chmod(0o755)
    env = dict(os.environ, PYTHON='py', PATH=f'{tmp_path}:{os.environ["PATH"]}')
    if script.startswith('dist'):
        env['PYTHON'] = 'echo'
    return subprocess.run(['bash', str(ROOT / 'tools' / script), *args], capture_output=True,
                          text=True, env=env, timeout=30)


@pytest.mark.parametrize('script, args, expected', [
    ('dist_train.sh', ['c.py', '2', '--amp'], f'{TORCHRUN} {ROOT}/tools/train.py c.py --amp --launcher pytorch'),
    ('dist_test.sh', ['c.py', 'k.pth', '2', '--out', 'p.pkl'],
     f'{TORCHRUN} {ROOT}/tools/test.py c.py k.pth --out p.pkl --launcher pytorch'),
    ('slurm_train.sh', ['part', 'job', 'c.py', 'wd', '--amp'],
     f'{SRUN} {ROOT}/tools/train.py c.py --work-dir=wd --amp --launcher=slurm'),
    ('slurm_test.sh', ['part', 'job', 'c.py', 'k.pth'], f'{SRUN} {ROOT}/tools/test.py c.py k.pth --launcher=slurm'),
])
def test_each_launcher_starts_its_tool(tmp_path, script, args, expected):
    done = launch(script, *args, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh', 'slurm_train.sh', 'slurm_test.sh'])
def test_a_launcher_without_its_arguments_prints_its_usage(tmp_path, script):
    done = launch(script, 'c.py', tmp_path=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith('usage: ') and 'CONFIG' in done.stderr
