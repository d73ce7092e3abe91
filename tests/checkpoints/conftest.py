"""Checkpoints shared by the checkpoint tests: a DINOv2 ViT-S file of two blocks, one of the tiny
detector."""
import pytest

from tests import fake_checkpoints as fake
from tests.helpers import build_runner, tiny_config


@pytest.fixture(scope='session')
def vits_state_dict():
    """A DINOv2 ViT-S state dict with 2 blocks; treat it as read-only."""
    return fake.dinov2(384, depth=2)


@pytest.fixture(scope='module')
def trained(tiny_data, tmp_path_factory):
    """A real checkpoint of the tiny detector after one epoch (HistoryBuffer, numpy inside), one
    per test module (its work dir holds nothing else)."""
    work_dir = tmp_path_factory.mktemp('trained')
    build_runner(tiny_config(tiny_data, work_dir, **{'train_cfg.max_epochs': 1})).train()
    return work_dir / 'epoch_1.pth'
