"""ViTAdapter as an mmdet backbone: shapes, parameter counts, training features, errors, init."""
import math

import pytest
import torch
from torch import nn

from mmdet_dinov2.models.backbones import ViTAdapter
from mmdet_dinov2.models.layers import MSDeformAttn
from tests.models.backbone_settings import CONFIGS, randomized

BN = dict(type='BN')


def _expected_maps(cfg, hw):
    return [(cfg['embed_dim'], hw[0] // s, hw[1] // s) for s in (4, 8, 16, 32)]


@pytest.mark.parametrize('arch, sizes', [
    ('S', [(128, 128, 2), (96, 224, 1), (448, 224, 1)]),  # 6x14 / 28x14 ViT grids: partial, exact windows
    ('B', [(160, 96, 1)]),
    ('L_shallow', [(64, 128, 1)]),                      # 4x8 grid, smaller than one window
])
def test_output_shapes(arch, sizes):
    cfg = CONFIGS[arch]
    model = ViTAdapter(**cfg, norm_cfg=BN).eval()
    for h, w, batch in sizes:
        with torch.no_grad():
            outs = model(torch.randn(batch, 3, h, w))
        assert isinstance(outs, tuple)
        assert [tuple(o.shape[1:]) for o in outs] == _expected_maps(cfg, (h, w))
        assert all(o.shape[0] == batch and torch.isfinite(o).all() for o in outs)
        # standard NCHW memory: mmcv's CPU RoIAlign silently misreads channels-last maps
        assert all(o.is_contiguous() for o in outs)


def _count_params(cfg):
    """Parameter count derived from the original's module list (independently of our code)."""
    D, depth, M, P = cfg['embed_dim'], cfg['depth'], cfg['deform_num_heads'], cfg['n_points']
    inplanes, groups = cfg['conv_inplane'], len(cfg['interaction_indexes'])
    linear = lambda i, o: i * o + o  # noqa: E731
    hidden = int(D * cfg.get('mlp_ratio', 4))
    if cfg.get('ffn_type', 'mlp') == 'swiglu':
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
        mlp = linear(D, 2 * hidden) + linear(hidden, D)
    else:
        mlp = linear(D, hidden) + linear(hidden, D)
    block = 2 * 2 * D + linear(D, 3 * D) + linear(D, D) + 2 * D + mlp
    grid = cfg['pretrain_size'] // 16
    vit = 3 * 16 * 16 * D + D + (grid * grid + 1) * D + depth * block

    def deform(levels):
        value = int(D * cfg['deform_ratio'])
        return linear(D, M * levels * P * 2) + linear(D, M * levels * P) + linear(D, value) + linear(value, D)
    ffn_hidden = int(D * cfg['cffn_ratio'])
    extractor = 2 * 2 * D + deform(1) + linear(D, ffn_hidden) + ffn_hidden * 9 + ffn_hidden \
        + linear(ffn_hidden, D) + 2 * D
    injector = 2 * 2 * D + deform(3) + D
    conv_bn = lambda i, o: i * o * 9 + 2 * o  # noqa: E731
    spm = (conv_bn(3, inplanes) + 2 * conv_bn(inplanes, inplanes) + conv_bn(inplanes, 2 * inplanes)
           + conv_bn(2 * inplanes, 4 * inplanes) + conv_bn(4 * inplanes, 4 * inplanes)
           + linear(inplanes, D) + linear(2 * inplanes, D) + 2 * linear(4 * inplanes, D))
    adapter = 3 * D + spm + groups * (injector + extractor) + 2 * extractor + D * D * 4 + D + 4 * 2 * D
    return vit, adapter


@pytest.mark.parametrize('arch', ['S', 'B'])
def test_parameter_count(arch):
    model = ViTAdapter(**CONFIGS[arch], norm_cfg=BN)
    vit = sum(p.numel() for p in model.vit_parameters())
    total = sum(p.numel() for p in model.parameters())
    assert (vit, total - vit) == _count_params(CONFIGS[arch])


def test_vit_g_on_the_meta_device():
    cfg = CONFIGS['G']
    with torch.device('meta'):
        model = ViTAdapter(**cfg, norm_cfg=BN)
    vit = sum(p.numel() for p in model.vit_parameters())
    total = sum(p.numel() for p in model.parameters())
    assert (vit, total - vit) == _count_params(cfg)
    fc1, fc2 = model.blocks[0].mlp.fc1, model.blocks[0].mlp.fc2
    assert (fc1.in_features, fc1.out_features, fc2.in_features) == (1536, 2 * 4096, 4096)
    assert (model.embed_dim, model.depth, model.patch_size, model.pretrain_size, model.ffn_type) == \
        (1536, 40, 16, 592, 'swiglu')
    outs = model.eval()(torch.empty(1, 3, 96, 160, device='meta'))
    assert [tuple(o.shape[1:]) for o in outs] == _expected_maps(cfg, (96, 160))


@pytest.fixture(scope='module')
def small_cfg():
    """ViT-Adapter-S widths with 4 blocks: fast, but every module kind is there."""
    return dict(CONFIGS['S'], depth=4, interaction_indexes=[[0, 0], [1, 1], [2, 2], [3, 3]],
                window_attn=[True, False, True, False], window_size=[14, None, 7, None], init_values=0.1)


def test_gradients_reach_every_parameter(small_cfg):
    model = ViTAdapter(**small_cfg, norm_cfg=BN)
    # randomized: at init the zero offset/weight layers would block gradients to the query norms
    model.load_state_dict(randomized(model.state_dict()))
    model.eval()  # BN on running statistics: in train mode biases right before a BN get no gradient
    outs = model(torch.randn(1, 3, 64, 96))
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()
    no_grad = [n for n, p in model.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum() > 0]
    assert no_grad == []
    # the class-token slot of the position embedding is stored but unused, as in the original
    assert model.pos_embed.grad[:, 0].abs().sum() == 0


def _outputs_and_grads(model, img, seed):
    torch.manual_seed(seed)  # drop path draws
    outs = model(img)
    loss = sum((o * torch.randn(o.shape, generator=torch.Generator().manual_seed(i))).sum()
               for i, o in enumerate(outs))
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
    return [o.detach() for o in outs], grads


def test_with_cp_gives_the_same_outputs_and_gradients(small_cfg):
    torch.manual_seed(0)
    plain = ViTAdapter(**small_cfg, norm_cfg=BN).train()
    checkpointed = ViTAdapter(**small_cfg, norm_cfg=BN, with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    img = torch.randn(1, 3, 96, 128)
    outs_a, grads_a = _outputs_and_grads(plain, img, seed=3)
    outs_b, grads_b = _outputs_and_grads(checkpointed, img, seed=3)
    for a, b in zip(outs_a + list(grads_a), outs_b + list(grads_b)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_freeze_vit_trains_the_adapter_only(small_cfg):
    model = ViTAdapter(**small_cfg, norm_cfg=BN, freeze_vit=True).train()
    vit_names = {'pos_embed'} | {n for n, _ in model.named_parameters() if n.startswith(('patch_embed.', 'blocks.'))}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == vit_names and len(vit_names) > 3
    assert all(not m.training for m in [model.patch_embed, *model.blocks.modules()])
    assert model.spm.training and model.interactions.training and model.norm1.training
    outs = model(torch.randn(1, 3, 64, 96))
    sum(o.sum() for o in outs).backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n in vit_names)
    assert model.interactions[0].injector.gamma.grad is not None
    model.eval()
    assert not model.spm.training


def test_out_indices_picks_maps(small_cfg):
    model = ViTAdapter(**small_cfg, norm_cfg=BN, out_indices=(1, 3)).eval()
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[-1] for o in outs] == [8, 2]


def test_sync_bn_default_runs_on_one_cpu_process(small_cfg):
    model = ViTAdapter(**small_cfg)
    assert isinstance(model.norm1, nn.SyncBatchNorm) and isinstance(model.spm.stem[1], nn.SyncBatchNorm)
    with torch.no_grad():
        assert len(model.eval()(torch.randn(1, 3, 64, 64))) == 4


@pytest.mark.parametrize('change, words', [
    (dict(interaction_indexes=[[0, 1], [3, 3]]), ['interaction_indexes', '[[0, 1], [3, 3]]', 'depth=4']),
    (dict(interaction_indexes=[[0, 1], [1, 3]]), ['interaction_indexes', 'contiguously']),
    (dict(interaction_indexes=[[0, 2]]), ['interaction_indexes', 'depth=4']),
    (dict(interaction_indexes=[[0, 1], [2, 4]]), ['interaction_indexes', 'depth=4']),
    (dict(interaction_indexes=None), ['interaction_indexes', 'None']),
    (dict(window_attn=[True, False]), ['window_attn', '2 entries', 'depth=4']),
    (dict(window_size=[14, 14, 14]), ['window_size', '3 entries', 'depth=4']),
    (dict(window_size=[14, None, None, None]), ['window_size[2]', 'None', 'window_attn=True']),
    (dict(patch_size=14), ['patch_size=14', '16']),
    (dict(img_size=224), ['img_size=224', 'pretrain_size=592']),
    (dict(ffn_type='geglu'), ['ffn_type', 'geglu', 'swiglu']),
    (dict(out_indices=(0, 4)), ['out_indices', '(0, 4)']),
    (dict(deform_num_heads=5), ['deform_num_heads=5', 'embed_dim=384']),
    (dict(deform_ratio=0.3), ['int(384 * 0.3)', 'num_heads=6']),
    (dict(pretrained='a.pth', init_cfg=dict(type='Pretrained', checkpoint='b.pth')), ['pretrained', 'init_cfg']),
])
def test_bad_arguments_are_named(small_cfg, change, words):
    with pytest.raises(ValueError) as err:
        ViTAdapter(**dict(small_cfg, **change), norm_cfg=BN)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


@pytest.mark.parametrize('hw', [(100, 128), (64, 80)])
def test_input_sides_must_be_multiples_of_32(small_cfg, hw):
    model = ViTAdapter(**small_cfg, norm_cfg=BN)
    with pytest.raises(ValueError, match=f'{hw[0]}x{hw[1]}.*multiples of 32'):
        model(torch.randn(1, 3, *hw))


def test_initialization_follows_the_original():
    torch.manual_seed(0)
    model = ViTAdapter(**CONFIGS['S'], norm_cfg=BN, init_values=0.5)
    attn = model.interactions[0].injector.attn
    M, L, P = 6, 3, 4
    bias = attn.sampling_offsets.bias.view(M, L, P, 2)
    for m in range(M):  # head m looks along angle 2*pi*m/M, scaled onto the unit square, p+1 steps
        angle = 2 * math.pi * m / M
        direction = torch.tensor([math.cos(angle), math.sin(angle)])
        direction /= direction.abs().max()
        for p in range(P):
            torch.testing.assert_close(bias[m, :, p], (p + 1) * direction.expand(L, 2))
    for deform in [m for m in model.modules() if isinstance(m, MSDeformAttn)]:
        assert deform.sampling_offsets.weight.abs().sum() == 0
        assert deform.attention_weights.weight.abs().sum() == 0 and deform.attention_weights.bias.abs().sum() == 0
        bound = math.sqrt(6 / sum(deform.value_proj.weight.shape))  # Xavier uniform
        assert deform.value_proj.weight.abs().max() <= bound and deform.value_proj.bias.abs().sum() == 0
    fc1 = model.interactions[0].extractor.ffn.fc1
    assert abs(fc1.weight.std().item() - 0.02) < 0.002 and fc1.bias.abs().sum() == 0
    dw = model.interactions[0].extractor.ffn.dwconv.dwconv.weight  # fan-out 9 for a depth-wise 3x3
    assert abs(dw.std().item() - math.sqrt(2 / 9)) < 0.05
    up = model.up.weight  # ConvTranspose2d(384, 384, 2, 2): fan-out 2 * 2 * 384
    assert abs(up.std().item() - math.sqrt(2 / (4 * 384))) < 0.002
    assert abs(model.level_embed.std().item() - 1) < 0.1
    assert torch.all(model.interactions[2].injector.gamma == 0.5)
    assert torch.all(model.blocks[3].gamma1 == 1) and torch.all(model.pos_embed == 0)
    assert model.interactions[0].extractor.query_norm.eps == 1e-6


def _save(tmp_path, state_dict, name='weights.pth'):
    path = tmp_path / name
    torch.save(state_dict, path)
    return str(path)


@pytest.mark.parametrize('how', ['pretrained', 'init_cfg'])
def test_init_weights_loads_through_the_safe_loader(small_cfg, tmp_path, monkeypatch, how):
    source = ViTAdapter(**small_cfg, norm_cfg=BN)
    path = _save(tmp_path, source.state_dict())
    import mmengine.runner.checkpoint as mmengine_checkpoint

    def refuse(*args, **kwargs):
        raise AssertionError("mmengine's loader must not be used")
    monkeypatch.setattr(mmengine_checkpoint, 'load_checkpoint', refuse)
    monkeypatch.setattr(mmengine_checkpoint, '_load_checkpoint', refuse)
    kwargs = dict(pretrained=path) if how == 'pretrained' else dict(init_cfg=dict(type='Pretrained', checkpoint=path))
    model = ViTAdapter(**small_cfg, norm_cfg=BN, **kwargs)
    assert not torch.equal(model.spm.fc1.weight, source.spm.fc1.weight)
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_init_weights_refuses_an_unsafe_pickle(small_cfg, tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ('payload ran',))
    path = _save(tmp_path, {'pos_embed': torch.zeros(1), 'x': Payload()}, 'unsafe.pth')
    model = ViTAdapter(**small_cfg, norm_cfg=BN, pretrained=path)
    with pytest.raises(Exception, match='unsafe.pth'):
        model.init_weights()
