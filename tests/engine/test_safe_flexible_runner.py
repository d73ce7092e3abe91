"""A config with a ``strategy`` gets SafeFlexibleRunner: SafeLoadRunner's guarantees on mmengine's
FlexibleRunner, checked in one process (FSDP2Strategy leaves the model unsharded there; the loading
path is the strategy's in both cases). A second run in a busy work dir is refused; a wrong-shaped
tensor is refused unless partial_load; a pickle payload is refused unless trust_checkpoint."""

import pytest
import torch

from mmdet_dinov2.checkpoints import CheckpointMismatchError, UnsafeCheckpointError
from mmdet_dinov2.engine.launch import build_runner
from mmdet_dinov2.engine.runner import SafeFlexibleRunner
from mmdet_dinov2.engine.work_dir_lock import WorkDirLockedError
from tests.checkpoints import gadgets
from tests.engine.test_work_dir_lock import contender
from tests.helpers import tiny_config

pytestmark = pytest.mark.usefixtures('plain_config_text', 'one_thread')
WRONG = 'roi_head.bbox_head.fc_cls.weight'  # saved with 2 classes more than the model has


def _sharded(tiny_data, work_dir, **options):
    cfg = tiny_config(tiny_data, work_dir, **options)
    cfg.strategy = dict(type='FSDP2Strategy')
    return cfg


@pytest.fixture(scope='module')
def weights(tmp_path_factory, tiny_data):
    """The tiny detector's initial weights, as saved with one tensor of the wrong shape."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    state_dict = MODELS.build(tiny_config(tiny_data, 'unused').model).state_dict()
    wrong = state_dict[WRONG]
    state_dict[WRONG] = torch.ones(wrong.shape[0] + 2, *wrong.shape[1:])
    folder = tmp_path_factory.mktemp('flexible_weights')
    torch.save(dict(state_dict=state_dict, meta={}), folder / 'wrong_shape.pth')
    return folder, state_dict


def test_a_strategy_gets_the_safe_flexible_runner_and_a_busy_work_dir_is_refused(
    tiny_data, tmp_path
):
    work_dir = tmp_path / 'work'
    holder = contender(work_dir)  # a training that holds the work dir
    try:
        assert holder.stdout.readline().strip() == 'won'
        with pytest.raises(WorkDirLockedError, match=f'process {holder.pid} '):
            build_runner(_sharded(tiny_data, work_dir, lock_work_dir_at_build=True))
    finally:
        holder.kill()
        holder.wait()
    runner = build_runner(_sharded(tiny_data, work_dir, lock_work_dir_at_build=True))
    assert type(runner) is SafeFlexibleRunner
    assert 'lock_work_dir_at_build' not in runner.cfg


def test_a_wrong_shape_is_refused_unless_partial_load(tiny_data, tmp_path, weights):
    folder, state_dict = weights
    path = str(folder / 'wrong_shape.pth')
    runner = build_runner(_sharded(tiny_data, tmp_path / 'a', load_from=path))
    with pytest.raises(
        CheckpointMismatchError,
        match=rf'(?s){WRONG} \(7, 64\) vs model \(5, 64\).*partial_load = True',
    ):
        runner.test()
    runner = build_runner(_sharded(tiny_data, tmp_path / 'b', load_from=path, partial_load=True))
    runner.test()
    model = runner.model
    torch.testing.assert_close(
        model.state_dict()['backbone.blocks.0.attn.qkv.weight'],
        state_dict['backbone.blocks.0.attn.qkv.weight'],
    )
    assert model.state_dict()[WRONG].shape != state_dict[WRONG].shape


def test_a_pickle_payload_is_refused_unless_trusted(tiny_data, tmp_path, weights):
    _, state_dict = weights
    state_dict = {k: v for k, v in state_dict.items() if k != WRONG}
    marker = tmp_path / 'PAYLOAD_RAN'
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=state_dict, meta=dict(note=gadgets.Payload(marker))), path)
    cfg = _sharded(tiny_data, tmp_path / 'a', load_from=str(path), partial_load=True)
    with pytest.raises(UnsafeCheckpointError, match='posix.system'):
        build_runner(cfg).test()
    assert not marker.exists()
    cfg = _sharded(
        tiny_data, tmp_path / 'b', load_from=str(path), partial_load=True, trust_checkpoint=True
    )
    build_runner(cfg).test()
    assert marker.exists()
