"""Sharded training (FSDP2Strategy under FlexibleRunner) against DDP, two CPU processes over gloo
through tools/dist_train.sh, the tests' tiny detector for 20 iterations: the same losses, the same
learning rate and weight decay per parameter, exact resume, and checkpoints that DDP runs and
tools/test.py read."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from mmdet_dinov2.checkpoints import load_checkpoint_file
from tests.helpers import REPO, TINY_CONFIG
from tests.tools.conftest import write_tiny_coco

pytestmark = pytest.mark.slow
ITERS = 20  # 8 images, 2 processes x 2 images: 2 iterations an epoch, 10 epochs
SHARDED = "strategy = dict(type='FSDP2Strategy')\n"  # tools/train.py: FlexibleRunner
# what the sharded configs under configs/vit_adapter/ add for bf16
BF16 = ("strategy = dict(type='FSDP2Strategy', param_dtype='bf16')\n"
        "optim_wrapper = dict(type='BF16OptimWrapper')\n"
        "default_hooks = dict(bf16=dict(type='BF16Hook'))\n"
        'val_cfg = dict(fp16=True)\ntest_cfg = dict(fp16=True)\n')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _config(path, data, sharded, exit_after_iter=None, extra=''):
    """The tiny config on ``data`` for 20 iterations, a checkpoint every 10, the probe hook."""
    path.write_text(
        f"_base_ = '{TINY_CONFIG}'\ndata_root = '{data}/'\n"
        'train_dataloader = dict(dataset=dict(data_root=data_root))\n'
        'val_dataloader = dict(dataset=dict(data_root=data_root))\n'
        'test_dataloader = val_dataloader\n'
        "val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')\n"
        'test_evaluator = val_evaluator\n'
        'train_cfg = dict(max_epochs=10, val_interval=1000)\n'
        'default_hooks = dict(checkpoint=dict(interval=5))\n'
        "custom_imports = dict(imports=['mmdet_dinov2', 'tests.engine.sharding_probe'])\n"
        f"custom_hooks = [dict(type='ShardingProbeHook', exit_after_iter={exit_after_iter})]\n"
        + (SHARDED if sharded else '') + extra)
    return path


def _run(args, env=None, check=True):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1', **(env or {}))
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        pytest.fail(f'{" ".join(map(str, args))} exited with {result.returncode}:\n'
                    f'{result.stdout[-3000:]}\n{result.stderr[-5000:]}')
    return result


def _train(config, work_dir, *args, check=True):
    return _run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', work_dir, *args],
                env=dict(PORT=str(_free_port())), check=check)


def _probe(work_dir, rank):
    return json.loads((work_dir / f'probe_rank{rank}.json').read_text())


def _assert_losses_equal(ours, reference, iterations, rtol):
    for it in iterations:
        for term, value in reference['losses'][str(it)].items():
            got = ours['losses'][str(it)][term]
            assert abs(got - value) <= rtol * abs(value), (it, term, got, value)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return write_tiny_coco(tmp_path_factory.mktemp('sharding_data'))


@pytest.fixture(scope='module')
def ddp_run(tmp_path_factory, data):
    work_dir = tmp_path_factory.mktemp('ddp')
    _train(_config(work_dir / 'ddp.py', data, sharded=False), work_dir)
    return work_dir


@pytest.fixture(scope='module')
def sharded_run(tmp_path_factory, data):
    work_dir = tmp_path_factory.mktemp('fsdp')
    result = _train(_config(work_dir / 'fsdp.py', data, sharded=True), work_dir)
    return work_dir, result.stdout + result.stderr


def test_sharded_losses_equal_ddp_per_iteration(ddp_run, sharded_run):
    work_dir, output = sharded_run
    log = next(work_dir.glob('*/*.log')).read_text()
    assert 'FSDP2Strategy: 4 units (backbone.blocks, backbone.interactions) and the root sharded ' \
           'over 2 processes' in log
    for rank in (0, 1):
        ours, reference = _probe(work_dir, rank), _probe(ddp_run, rank)
        assert sorted(map(int, ours['losses'])) == list(range(1, ITERS + 1))
        _assert_losses_equal(ours, reference, range(1, ITERS + 1), rtol=1e-5)
    first, last = (reference['losses'][str(i)]['loss'] for i in (1, ITERS))
    assert last < 0.8 * first  # it trained: losses of a learning model, not constants


def test_sharded_groups_equal_unsharded_by_name(ddp_run, sharded_run):
    ours, reference = _probe(sharded_run[0], 0)['groups'], _probe(ddp_run, 0)['groups']
    assert ours == reference
    # the tiny config: 2 blocks, layer_decay_rate 0.7, so lr ratios 0.7 ** (3 - layer id)
    top = max(lr for lr, _ in reference.values())
    ratio = {name: lr / top for name, (lr, _) in reference.items()}
    assert ratio['backbone.patch_embed.proj.weight'] == pytest.approx(0.7 ** 3)
    assert ratio['backbone.blocks.0.attn.qkv.weight'] == pytest.approx(0.7 ** 2)
    assert ratio['backbone.blocks.1.mlp.fc2.bias'] == pytest.approx(0.7)
    assert ratio['rpn_head.rpn_conv.weight'] == 1
    assert reference['backbone.blocks.1.mlp.fc2.bias'][1] == 0
    assert reference['backbone.blocks.1.mlp.fc2.weight'][1] == 0.05


def test_resume_after_kill_equals_uninterrupted(sharded_run, data, tmp_path):
    uninterrupted, _ = sharded_run
    config = _config(tmp_path / 'killed.py', data, sharded=True, exit_after_iter=10)
    killed = _train(config, tmp_path, check=False)
    assert killed.returncode != 0 and (tmp_path / 'epoch_5.pth').is_file()
    assert not (tmp_path / 'epoch_10.pth').exists()
    _train(_config(tmp_path / 'resumed.py', data, sharded=True), tmp_path, '--resume')
    for rank in (0, 1):
        resumed = _probe(tmp_path, rank)
        assert sorted(map(int, resumed['losses'])) == list(range(11, ITERS + 1))
        _assert_losses_equal(resumed, _probe(uninterrupted, rank), range(11, ITERS + 1), rtol=1e-6)


def test_ddp_checkpoint_resumes_sharded(ddp_run, data, tmp_path):
    config = _config(tmp_path / 'fsdp.py', data, sharded=True)
    _train(config, tmp_path, '--resume', ddp_run / 'epoch_5.pth')
    for rank in (0, 1):
        _assert_losses_equal(_probe(tmp_path, rank), _probe(ddp_run, rank), range(11, ITERS + 1),
                             rtol=1e-6)


def test_sharded_checkpoint_is_a_ddp_checkpoint(ddp_run, sharded_run):
    ours = load_checkpoint_file(sharded_run[0] / 'epoch_10.pth')
    reference = load_checkpoint_file(ddp_run / 'epoch_10.pth')
    assert ours['state_dict'].keys() == reference['state_dict'].keys()
    for name, value in reference['state_dict'].items():
        assert type(ours['state_dict'][name]) is torch.Tensor
        torch.testing.assert_close(ours['state_dict'][name], value, rtol=1e-5, atol=1e-7)
    saved, expected = ours['optimizer'], reference['optimizer']
    assert [g['params'] for g in saved['param_groups']] == \
        [g['params'] for g in expected['param_groups']]
    for index, state in expected['state'].items():
        for key, value in state.items():
            torch.testing.assert_close(saved['state'][index][key], value, rtol=1e-5, atol=1e-9)


def test_sharded_checkpoint_loads_in_test_tool_on_one_process(sharded_run, tmp_path):
    work_dir, _ = sharded_run
    result = _run([sys.executable, 'tools/test.py', work_dir / 'fsdp.py',
                   work_dir / 'epoch_10.pth', '--work-dir', tmp_path])
    output = result.stdout + result.stderr
    assert 'FSDP2Strategy: no process group, the model is not sharded' in output
    assert "Loaded 240 of the model's 240 tensors (0 missing, 0 unexpected)" in output
    assert 'bbox_mAP_copypaste' in output


def test_bf16_sharded_run_trains_validates_and_stays_near_fp32(ddp_run, data, tmp_path):
    config = _config(tmp_path / 'bf16.py', data, sharded=False, extra=BF16)
    _train(config, tmp_path, '--cfg-options', 'train_cfg.val_interval=10')
    log = next(tmp_path.glob('*/*.log')).read_text()
    assert 'parameters in bf16' in log and 'bbox_mAP_copypaste' in log  # validated under bf16
    ours, reference = _probe(tmp_path, 0), _probe(ddp_run, 0)
    first, last = ((ours['losses'][str(i)]['loss'], reference['losses'][str(i)]['loss'])
                   for i in (1, ITERS))
    assert first[0] == pytest.approx(first[1], rel=0.01)  # same weights, bf16 rounding only
    # 20 steps of a tiny model from scratch drift apart: measured 7 % (docs/sharding.md)
    assert last[0] == pytest.approx(last[1], rel=0.15)
