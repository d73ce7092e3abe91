"""A Mask R-CNN ViT-Adapter-S train step on the GPU at the training size (1024x1024, batch 2): fp32,
bf16 and fp16 autocast; and freeze_vit, which must train the adapter and the heads only."""
import pytest
import torch

SIZE, BATCH = 1024, 2


def _losses(model, packed, dtype, seed=0):
    """One forward in 'loss' mode under autocast(dtype) (None: fp32): {name: scalar}, total."""
    data = model.data_preprocessor(packed, training=True)
    torch.manual_seed(seed)  # the RPN / RoI samplers draw from torch's generator
    with torch.autocast('cuda', dtype=dtype or torch.float32, enabled=dtype is not None):
        losses = model(**data, mode='loss')
    parsed = {k: (sum(v) if isinstance(v, (list, tuple)) else v) for k, v in losses.items() if 'loss' in k}
    return parsed, sum(parsed.values())


@pytest.fixture(scope='module')
def detector_s(build_detector):
    model = build_detector('s').cuda()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    return model, state


@pytest.fixture(scope='module')
def batch(detection_batch):
    return detection_batch(size=SIZE, batch=BATCH)


@pytest.fixture(scope='module')
def fp32_losses(detector_s, batch):
    model, state = detector_s
    model.load_state_dict(state)
    with torch.no_grad():
        losses, _ = _losses(model, batch, None)
    return {k: v.item() for k, v in losses.items()}


@pytest.mark.parametrize('dtype', [None, torch.bfloat16, torch.float16], ids=['fp32', 'bf16', 'fp16'])
def test_train_step_finite_and_close_to_fp32(dtype, detector_s, batch, fp32_losses):
    model, state = detector_s
    model.load_state_dict(state)
    model.zero_grad(set_to_none=True)
    losses, total = _losses(model, batch, dtype)
    assert torch.isfinite(total), {k: v.item() for k, v in losses.items()}
    for k, v in losses.items():  # the first step sees the same weights, images and samples
        ref = fp32_losses[k]
        assert abs(v.item() - ref) <= 1e-2 * max(abs(ref), 1e-2), f'{k}: {v.item():.5f} vs fp32 {ref:.5f}'
    scaler = torch.amp.GradScaler('cuda', enabled=dtype is torch.float16)
    scaler.scale(total).backward()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler.unscale_(optimizer)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    scaler.step(optimizer)
    scaler.update()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_freeze_vit_trains_only_adapter_and_heads(build_detector, batch):
    model = build_detector('s', freeze_vit=True).cuda()
    vit = {id(p) for p in model.backbone.vit_parameters()}
    names_vit = [n for n, p in model.named_parameters() if id(p) in vit]
    assert names_vit and all(not p.requires_grad for p in model.backbone.vit_parameters())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    _, total = _losses(model, batch, torch.bfloat16)
    total.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert not changed & set(names_vit), f'ViT parameters changed: {sorted(changed & set(names_vit))[:5]}'
    for part in ('backbone.spm.', 'backbone.interactions.', 'neck.', 'rpn_head.', 'roi_head.'):
        assert any(n.startswith(part) for n in changed), f'nothing under {part} was trained'
    assert all(p.grad is None for p in model.backbone.vit_parameters())
