"""Why NonFiniteLossHook is kept beside mmdet's CheckInvalidLossHook: mmdet's looks every 50
iterations by default, and even at every iteration it fails with a bare AssertionError on the total;
ours stops at the first bad iteration with an error naming it, the bad terms and the checkpoint to
resume from. (tests/engine/test_faults.py checks ours in a real training.)"""
import logging
from types import SimpleNamespace

import pytest
import torch

from mmdet.engine.hooks import CheckInvalidLossHook
from mmdet_dinov2.engine.hooks import NonFiniteLossError, NonFiniteLossHook


def _runner(tmp_path):
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    return SimpleNamespace(iter=0, epoch=1, work_dir=str(tmp_path), logger=logging.getLogger('t'))


OUTPUTS = dict(loss_cls=torch.tensor(float('nan')), loss_mask=torch.tensor(0.5),
               loss=torch.tensor(float('nan')), acc=torch.tensor(90.0))


def test_mmdet_hook_misses_the_first_iteration_and_names_nothing(tmp_path):
    runner = _runner(tmp_path)
    CheckInvalidLossHook().after_train_iter(runner, 0, outputs=OUTPUTS)  # not checked: passes
    with pytest.raises(AssertionError) as error:
        CheckInvalidLossHook(interval=1).after_train_iter(runner, 0, outputs=OUTPUTS)
    assert 'loss_cls' not in str(error.value)


def test_ours_stops_at_the_first_iteration_naming_the_term_and_the_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError) as error:
        NonFiniteLossHook().after_train_iter(_runner(tmp_path), 0, outputs=OUTPUTS)
    message = str(error.value)
    assert message.startswith('non-finite loss at iteration 1 (epoch 2): loss_cls=nan, loss=nan.')
    assert 'loss_mask' not in message
    assert f'Last good checkpoint: {tmp_path / "epoch_1.pth"} (resume with --resume)' in message
