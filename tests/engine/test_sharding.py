"""Sharded training (FSDP2Strategy under SafeFlexibleRunner) against DDP, two CPU processes over
gloo through tools/dist_train.sh, the tests' tiny detector for 20 iterations: the same losses, the
same learning rate and weight decay per parameter, exact resume, and checkpoints that DDP runs and
tools/test.py read. One sharded run serves most checks: killed after iteration 10, then resumed.
bf16 over 20 iterations against float32: tests/engine/test_precision.py (one process)."""
import json
import os
import socket
import subprocess
from types import SimpleNamespace

import pytest
import torch

from mmdet_dinov2.checkpoints import load_checkpoint_file
from tests.helpers import REPO, TINY_CONFIG, load_tool
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


def _config(path, data, sharded, exit_after_iter=None, extra='', checkpoint_interval=5):
    """The tiny config on ``data`` for 20 iterations, a checkpoint every ``checkpoint_interval``
    epochs (2 iterations each), the probe hook."""
    path.write_text(
        f"_base_ = '{TINY_CONFIG}'\ndata_root = '{data}/'\n"
        'train_dataloader = dict(dataset=dict(data_root=data_root))\n'
        'val_dataloader = dict(dataset=dict(data_root=data_root))\n'
        'test_dataloader = val_dataloader\n'
        "val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')\n"
        'test_evaluator = val_evaluator\n'
        'train_cfg = dict(max_epochs=10, val_interval=1000)\n'
        f'default_hooks = dict(checkpoint=dict(interval={checkpoint_interval}))\n'
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
    """20 iterations under DDP, a checkpoint every epoch (2 iterations)."""
    work_dir = tmp_path_factory.mktemp('ddp')
    _train(_config(work_dir / 'ddp.py', data, sharded=False, checkpoint_interval=1), work_dir)
    return work_dir


@pytest.fixture(scope='module')
def sharded_run(tmp_path_factory, data):
    """A sharded run killed after iteration 10 (the end of epoch 5, its checkpoint written), then
    resumed with --resume to iteration 20 in the same work dir."""
    work_dir = tmp_path_factory.mktemp('fsdp')
    config = _config(work_dir / 'fsdp.py', data, sharded=True, exit_after_iter=10)
    killed = _train(config, work_dir, check=False)
    run = SimpleNamespace(
        work_dir=work_dir, killed_returncode=killed.returncode,
        killed=[_probe(work_dir, rank) for rank in (0, 1)],
        checkpoints_after_kill=sorted(p.name for p in work_dir.glob('*.pth')))
    _train(_config(work_dir / 'resumed.py', data, sharded=True), work_dir, '--resume')
    run.resumed = [_probe(work_dir, rank) for rank in (0, 1)]
    return run


def test_sharded_losses_equal_ddp_per_iteration(ddp_run, sharded_run):
    log = '\n'.join(p.read_text() for p in sharded_run.work_dir.glob('*/*.log'))
    assert 'FSDP2Strategy: 4 units (backbone.blocks, backbone.interactions) and the root sharded ' \
           'over 2 processes' in log
    assert 'runner_type SafeLoadRunner -> SafeFlexibleRunner' in log
    for rank in (0, 1):
        killed, reference = sharded_run.killed[rank], _probe(ddp_run, rank)
        assert sorted(map(int, killed['losses'])) == list(range(1, 11))
        _assert_losses_equal(killed, reference, range(1, 11), rtol=1e-5)
        _assert_losses_equal(sharded_run.resumed[rank], reference, range(11, ITERS + 1), rtol=1e-5)
    first, last = (reference['losses'][str(i)]['loss'] for i in (1, ITERS))
    assert last < 0.8 * first  # it trained: losses of a learning model, not constants


def test_sharded_groups_equal_unsharded_by_name(ddp_run, sharded_run):
    ours, reference = sharded_run.killed[0]['groups'], _probe(ddp_run, 0)['groups']
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


def test_resume_after_kill_equals_uninterrupted(ddp_run, sharded_run):
    """The uninterrupted run is DDP's, which the sharded run equals (bit for bit here)."""
    assert sharded_run.killed_returncode != 0
    assert 'epoch_5.pth' in sharded_run.checkpoints_after_kill
    assert 'epoch_10.pth' not in sharded_run.checkpoints_after_kill
    for rank in (0, 1):
        resumed = sharded_run.resumed[rank]
        assert sorted(map(int, resumed['losses'])) == list(range(11, ITERS + 1))
        _assert_losses_equal(resumed, _probe(ddp_run, rank), range(11, ITERS + 1), rtol=1e-6)


def test_ddp_checkpoint_resumes_sharded(ddp_run, data, tmp_path):
    config = _config(tmp_path / 'fsdp.py', data, sharded=True)
    _train(config, tmp_path, '--resume', ddp_run / 'epoch_9.pth')
    for rank in (0, 1):
        resumed = _probe(tmp_path, rank)
        assert sorted(map(int, resumed['losses'])) == [ITERS - 1, ITERS]
        _assert_losses_equal(resumed, _probe(ddp_run, rank), (ITERS - 1, ITERS), rtol=1e-6)


def test_sharded_checkpoint_is_a_ddp_checkpoint(ddp_run, sharded_run):
    ours = load_checkpoint_file(sharded_run.work_dir / 'epoch_10.pth')
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
    """tools/test.py in this process (no process group): its log file says what it did."""
    work_dir = sharded_run.work_dir
    metrics = load_tool('tools/test.py').main(
        [str(work_dir / 'fsdp.py'), str(work_dir / 'epoch_10.pth'), '--work-dir', str(tmp_path)])
    log = next(tmp_path.glob('*/*.log')).read_text()
    assert 'FSDP2Strategy: no process group, the model is not sharded' in log
    assert "Loaded 240 of the model's 240 tensors (0 missing, 0 unexpected)" in log
    assert 'coco/bbox_mAP' in metrics


def test_bf16_sharded_run_trains_and_validates(ddp_run, data, tmp_path):
    config = _config(tmp_path / 'bf16.py', data, sharded=False, extra=BF16)
    _train(config, tmp_path, '--cfg-options', 'train_cfg.max_epochs=2', 'train_cfg.val_interval=2')
    log = next(tmp_path.glob('*/*.log')).read_text()
    assert 'parameters in bf16' in log and 'bbox_mAP_copypaste' in log  # validated under bf16
    for rank in (0, 1):
        ours, reference = _probe(tmp_path, rank)['losses'], _probe(ddp_run, rank)['losses']
        assert sorted(map(int, ours)) == [1, 2, 3, 4]
        # the same weights, bf16 rounding only
        assert ours['1']['loss'] == pytest.approx(reference['1']['loss'], rel=0.01)
