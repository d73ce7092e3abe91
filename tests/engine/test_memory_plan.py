"""tools/analysis_tools/memory_plan.py: its parameter arithmetic against a hand count, and its
activation measurement on the meta device against a real CPU forward."""
import torch
from mmengine.config import Config
from torch import nn

from tests.helpers import TINY_CONFIG, load_tool

plan = load_tool('tools/analysis_tools/memory_plan.py')


class Detector(nn.Module):
    """Units: two blocks and one interaction (20 parameters each); root: embedding and head."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.patch_embed = nn.Linear(4, 4)  # 20
        self.backbone.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
        self.backbone.interactions = nn.ModuleList([nn.Linear(4, 4)])
        self.head = nn.Linear(4, 2)  # 10


def test_counts_and_bytes_per_gpu_by_hand():
    model = Detector()
    model.head.requires_grad_(False)
    c = plan.counts(model, all_trainable=False)
    assert c == dict(total=90, trainable=80, unit=20, units=3, root=30)
    ddp, sharded = plan.states(c, gpus=2)
    assert ddp == 4 * 90 + 4 * 80 + 8 * 80  # weights, gradients, AdamW moments
    assert sharded == ddp / 2 + (2 * 2 * 20 + 4 * 20) + 8 * 30  # + two bf16 units, grads, root
    assert plan.counts(model, all_trainable=True)['trainable'] == 90


def test_meta_activations_match_a_real_forward_and_shrink_with_cp(saved_bytes):
    cfg = Config.fromfile(TINY_CONFIG)
    full, checkpointed = (plan.activation_bytes(cfg, 64, cp) for cp in (False, True))
    assert 0 < checkpointed < full
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    backbone = MODELS.build(dict(cfg.model.backbone, pretrained=None)).train()
    real = saved_bytes(lambda: backbone(torch.rand(1, 3, 64, 64)))
    # the same saved storages, counted on the meta device (measured: 0.6 % more there)
    assert abs(full - real) <= 0.01 * real, (full, real)
