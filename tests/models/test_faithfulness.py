"""ViTAdapter against the naive re-implementation of the original forward (tests/reference)."""
import pytest
import torch

from mmdet_dinov2.models.backbones import ViTAdapter
from tests.models.backbone_settings import CONFIGS, build_naive, randomized


def _pair(cfg, seed=0):
    """Ours and the naive reference holding the same randomized weights."""
    torch.manual_seed(seed)
    ours = ViTAdapter(**cfg, norm_cfg=dict(type='BN'))
    ours.load_state_dict(randomized(ours.state_dict(), seed))
    ref = build_naive(cfg)
    ref.load_state_dict(ours.state_dict(), strict=True)
    return ours, ref


@pytest.mark.parametrize('arch', ['S', 'B', 'L', 'G'])
def test_state_dict_names_and_shapes_equal_the_originals(arch):
    with torch.device('meta'):
        ours = ViTAdapter(**CONFIGS[arch], norm_cfg=dict(type='BN')).state_dict()
        ref = build_naive(CONFIGS[arch]).state_dict()
    assert list(ours) == list(ref)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in ref.items()}


@pytest.mark.parametrize('arch, sizes', [
    # ViT grids 14x14 (exact windows), 6x10 (one padded window), 16x8; batch 2 then 1
    ('S', [(224, 224, 1), (96, 160, 2), (256, 128, 1)]),
    ('B_shallow', [(128, 96, 1)]),  # B's widths and deform_ratio 0.5, one block per interaction
])
def test_outputs_equal_the_naive_reference(arch, sizes):
    ours, ref = _pair(CONFIGS[arch])
    ours.eval(), ref.eval()
    for h, w, batch in sizes:
        img = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(h))
        with torch.no_grad():
            got, want = ours(img), ref(img)
        assert len(got) == 4
        for level, (a, b) in enumerate(zip(got, want)):
            assert a.shape == b.shape
            assert (a - b).abs().max() <= 1e-4, (h, w, level, (a - b).abs().max().item())
            assert b.abs().max() > 1.0  # a real signal, not a vanishing one


def test_training_gradients_equal_the_naive_reference():
    """Train mode (BN batch statistics), batch 1, every parameter's gradient.

    In float64: in float32 the stem's max-pool routes a gradient to whichever of two nearly equal
    neighbours wins, and that flips with the 1e-7 rounding differences between conv layouts.
    (Tolerance 1e-7, not 1e-12: timm resizes the position embedding in float32.)
    """
    cfg = dict(CONFIGS['S'], drop_path_rate=0.0)
    ours, ref = _pair(cfg, seed=1)
    ours.double().train(), ref.double().train()
    img = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got, want = ours(img), ref(img)
    probes = [torch.randn(o.shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
              for i, o in enumerate(want)]
    grads_ours = torch.autograd.grad(sum((o * p).sum() for o, p in zip(got, probes)), list(ours.parameters()))
    grads_ref = torch.autograd.grad(sum((o * p).sum() for o, p in zip(want, probes)), list(ref.parameters()))
    scale = max(g.abs().max() for g in grads_ref)
    for (name, _), a, b in zip(ours.named_parameters(), grads_ours, grads_ref):
        assert (a - b).abs().max() <= 1e-7 * scale, (name, (a - b).abs().max().item(), scale.item())
