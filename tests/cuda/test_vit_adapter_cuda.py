"""ViTAdapter on CUDA against the same weights on the CPU (fp32, TF32 off), and activation
checkpointing (with_cp) against none."""
import copy

import pytest
import torch

SIZE = 448  # 28x28 tokens: whole 14x14 windows, levels at 56, 28, 14 pixels of stride 8/16/32


def _run(model, img, seed=0):
    """Forward + backward of a fixed random projection of every output level."""
    outs = model(img)
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g).to(o.device)).sum() for o in outs)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), [o.detach() for o in outs], grads


@pytest.mark.parametrize('arch', ['s', 'b'])
def test_cuda_equals_cpu(arch, backbone_cfg, no_tf32, relative_error):
    from mmdet_dinov2.models.backbones import ViTAdapter
    torch.manual_seed(0)
    cpu = ViTAdapter(**backbone_cfg(arch, drop_path_rate=0.0)).train()  # no random drop path
    gpu = copy.deepcopy(cpu).cuda()
    img = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    loss_c, outs_c, grads_c = _run(cpu, img)
    loss_g, outs_g, grads_g = _run(gpu, img.cuda())
    assert relative_error(loss_g, loss_c) <= 1e-4
    for i, (g, c) in enumerate(zip(outs_g, outs_c)):
        assert relative_error(g, c) <= 1e-4, f'output {i}: {relative_error(g, c):.2e}'
    assert grads_g.keys() == grads_c.keys()
    worst = max(grads_c, key=lambda n: relative_error(grads_g[n], grads_c[n]))
    assert relative_error(grads_g[worst], grads_c[worst]) <= 1e-4, \
        f'gradient of {worst}: {relative_error(grads_g[worst], grads_c[worst]):.2e}'


def test_with_cp_gives_the_same_loss_and_gradients(backbone_cfg, no_tf32, relative_error):
    """Drop path stays on (the config's 0.2): checkpointing must replay the same random masks."""
    from mmdet_dinov2.models.backbones import ViTAdapter
    torch.manual_seed(0)
    plain = ViTAdapter(**backbone_cfg('s', with_cp=False)).cuda().train()
    cp = ViTAdapter(**backbone_cfg('s', with_cp=True)).cuda().train()
    cp.load_state_dict(plain.state_dict())
    img = torch.randn(2, 3, 512, 512, device='cuda')
    torch.manual_seed(2)
    loss_p, outs_p, grads_p = _run(plain, img)
    torch.manual_seed(2)
    loss_c, outs_c, grads_c = _run(cp, img)
    # the same kernels in the same order; only mmcv's atomic adds in the deformable-attention
    # backward may sum in another order
    assert relative_error(loss_c, loss_p) <= 1e-6
    for g, c in zip(outs_c, outs_p):
        assert relative_error(g, c) <= 1e-6
    assert grads_c.keys() == grads_p.keys()
    for n in grads_p:
        assert relative_error(grads_c[n], grads_p[n]) <= 1e-5, n
