"""A DINOv2 ViT-S file of two blocks, shared by the checkpoint tests."""
import pytest

from tests import fake_checkpoints as fake


@pytest.fixture(scope='session')
def vits_state_dict():
    """A DINOv2 ViT-S state dict with 2 blocks; treat it as read-only."""
    return fake.dinov2(384, depth=2)
