"""DINOv3's RoPE through timm equals, bit for bit, the formula written out in ``_tables_by_hand``:
float32 throughout, coordinates (cell centre / divisor) * 2 - 1 on the row-major grid, perturbed in
training by shift, jitter, rescale drawn in that order, angles 2 pi * coordinate / period, the d / 4 row
angles then the d / 4 column angles, repeated twice.
"""
import itertools
import math

import pytest
import torch

from mmdet_dinov2.models.layers.rope import RopePositionEmbedding, apply_rope


def _periods_by_hand(head_dim, base, min_period, max_period):
    n = head_dim // 4
    if base is not None:
        return base ** (torch.arange(n, dtype=torch.float32) * 4 / head_dim)
    ratio = max_period / min_period
    return ratio ** torch.linspace(0, 1, n, dtype=torch.float32) * (max_period / ratio)


def _tables_by_hand(H, W, periods, normalize_coords='separate', shift=None, jitter=None, rescale=None):
    """sin, cos (H * W, 4 * len(periods)); shift / jitter / rescale given only for training."""
    div_h, div_w = {'separate': (H, W), 'max': (max(H, W),) * 2, 'min': (min(H, W),) * 2}[normalize_coords]
    rows = (torch.arange(H, dtype=torch.float32) + 0.5) / div_h
    cols = (torch.arange(W, dtype=torch.float32) + 0.5) / div_w
    coords = torch.stack(torch.meshgrid(rows, cols, indexing='ij'), -1).reshape(H * W, 2) * 2 - 1
    if shift is not None:
        coords = coords + torch.empty(2).uniform_(-shift, shift)
    if jitter is not None:
        coords = coords * torch.empty(2).uniform_(-math.log(jitter), math.log(jitter)).exp()
    if rescale is not None:
        coords = coords * torch.empty(1).uniform_(-math.log(rescale), math.log(rescale)).exp()
    angles = 2 * math.pi * coords[:, :, None] / periods  # (HW, 2, d / 4)
    angles = angles.flatten(1).repeat(1, 2)
    return angles.sin(), angles.cos()


PERIODS = [dict(base=100.0), dict(base=10000.0), dict(base=None, min_period=0.5, max_period=80.0),
           dict(base=None, min_period=0.7, max_period=37.3)]


@pytest.mark.parametrize('head_dim, periods, normalize_coords', list(itertools.product(
    [16, 64, 128], PERIODS, ['separate', 'max', 'min'])))
def test_eval_tables_equal_the_hand_written_formula(head_dim, periods, normalize_coords):
    """Head widths of S..L (64) and 7B (128); grids square, tall, wide, one token and a 1024x640 image's."""
    base = periods.get('base')
    rope = RopePositionEmbedding(2 * head_dim, 2, normalize_coords=normalize_coords, rescale_coords=2.0,
                                 **periods).eval()
    want_periods = _periods_by_hand(head_dim, base, periods.get('min_period'), periods.get('max_period'))
    assert torch.equal(rope.periods, want_periods)
    for H, W in [(1, 1), (3, 5), (14, 14), (16, 9), (64, 40)]:
        sin, cos = rope(H, W)
        want_sin, want_cos = _tables_by_hand(H, W, want_periods, normalize_coords)
        assert sin.dtype == cos.dtype == torch.float32 and sin.shape == (H * W, head_dim)
        assert torch.equal(sin, want_sin) and torch.equal(cos, want_cos), (H, W)


@pytest.mark.parametrize('shift, jitter, rescale', [(0.1, None, None), (None, 1.5, None), (None, None, 2.0),
                                                    (0.2, 1.3, 2.0)])
def test_training_perturbation_draws_like_the_hand_written_formula(shift, jitter, rescale):
    rope = RopePositionEmbedding(64, 2, shift_coords=shift, jitter_coords=jitter, rescale_coords=rescale).train()
    torch.manual_seed(3)
    got = rope(5, 7)
    torch.manual_seed(3)
    want = _tables_by_hand(5, 7, rope.periods, shift=shift, jitter=jitter, rescale=rescale)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_periods_stay_a_persistent_float32_buffer_through_casts():
    """The loaded (official: bfloat16-rounded) periods survive dtype casts; tables stay float32."""
    rope = RopePositionEmbedding(64, 2)
    loaded = rope.periods.bfloat16().float()
    rope.load_state_dict({'periods': loaded}, strict=True)
    for cast in (torch.nn.Module.double, torch.nn.Module.bfloat16, torch.nn.Module.half):
        cast(rope)
        assert list(rope.state_dict()) == ['periods']
        assert rope.periods.dtype == torch.float32 and torch.equal(rope.periods, loaded)
        assert rope(3, 4)[0].dtype == torch.float32


def test_apply_rope_rotates_channel_i_with_channel_i_plus_half_in_float32():
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    sin, cos = RopePositionEmbedding(8, 1).eval()(2, 3)
    x1, x2 = x.float().chunk(2, -1)
    want = torch.cat([x1 * cos[:, :4] - x2 * sin[:, :4], x2 * cos[:, 4:] + x1 * sin[:, 4:]], -1)
    got = apply_rope(x, sin, cos)
    assert got.dtype == torch.float64 and torch.equal(got, want.double())
