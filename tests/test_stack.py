"""The stack this project stands on: pins, mmcv's compiled ops, a stock mmdet Mask R-CNN on CPU."""
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _pins():
    pins = {}
    for line in (ROOT / 'requirements.txt').read_text().splitlines():
        m = re.match(r'^([A-Za-z0-9_.-]+)==(\S+)', line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_installed_versions_match_requirements():
    from importlib.metadata import version
    pins = _pins()
    for dist in ('onedl-mmcv', 'onedl-mmengine', 'onedl-mmdetection', 'timm', 'pycocotools'):
        assert version(dist) == pins[dist], f'{dist}: installed {version(dist)}, requirements.txt pins {pins[dist]}'
    # A GPU user may keep their own CUDA build of torch (make setup TORCH=keep).
    if os.environ.get('TORCH') != 'keep':
        release = torch.__version__.split('+')[0]
        assert release == pins['torch'], f'torch {release} installed, requirements.txt pins {pins["torch"]}'


def test_package_registers_into_mmdet():
    import mmdet_dinov2  # noqa: F401
    from mmdet.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
    assert MODELS.get('ViTAdapter') is not None
    assert OPTIM_WRAPPER_CONSTRUCTORS.get('LayerDecayOptimizerConstructor') is not None


def _random_boxes(n, size=100.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3 + 1
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.parametrize('iou_threshold', [0.3, 0.5, 0.7])
def test_mmcv_nms_matches_torchvision(iou_threshold):
    import torchvision
    from mmcv.ops import nms
    boxes = _random_boxes(300, seed=int(iou_threshold * 10))
    scores = torch.rand(300, generator=torch.Generator().manual_seed(1))
    _, keep = nms(boxes, scores, iou_threshold)
    ref = torchvision.ops.nms(boxes, scores, iou_threshold)
    assert keep.tolist() == ref.tolist()


@pytest.mark.parametrize('sampling_ratio', [0, 2])
def test_mmcv_roi_align_matches_torchvision(sampling_ratio):
    import torchvision
    from mmcv.ops import roi_align
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 8, 32, 40, generator=g, requires_grad=True)
    boxes = _random_boxes(20, size=120.0, seed=3)
    rois = torch.cat([torch.randint(0, 2, (20, 1), generator=g).float(), boxes], dim=1)
    ours = roi_align(feats, rois, (7, 7), 0.25, sampling_ratio, 'avg', True)
    ref = torchvision.ops.roi_align(feats, rois, (7, 7), 0.25, sampling_ratio, aligned=True)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    # the backward is compiled too
    (g_ours,) = torch.autograd.grad(ours.sum(), feats)
    (g_ref,) = torch.autograd.grad(ref.sum(), feats)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-4, atol=1e-5)


def _naive_ms_deform_attn(value, shapes, locations, weights):
    """Point-by-point bilinear sampling (zero padding, pixel centres at +0.5), summed with weights.

    value (B, S, M, D); locations (B, Q, M, L, P, 2) in [0, 1] as (x, y); weights (B, Q, M, L, P).
    """
    B, _, M, D = value.shape
    _, Q, _, L, P, _ = locations.shape
    out = torch.zeros(B, Q, M, D, dtype=torch.float64)
    start = 0
    for lvl, (H, W) in enumerate(shapes):
        v = value[:, start:start + H * W].reshape(B, H, W, M, D).double()
        start += H * W
        x = locations[..., lvl, :, 0].double() * W - 0.5  # (B, Q, M, P)
        y = locations[..., lvl, :, 1].double() * H - 0.5
        x0, y0 = x.floor(), y.floor()
        for dx in (0, 1):
            for dy in (0, 1):
                xi, yi = x0 + dx, y0 + dy
                w = (1 - (x - xi).abs()) * (1 - (y - yi).abs())
                valid = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
                xc, yc = xi.clamp(0, W - 1).long(), yi.clamp(0, H - 1).long()
                for b in range(B):
                    for m in range(M):
                        sampled = v[b, yc[b, :, m], xc[b, :, m], m]  # (Q, P, D)
                        coef = (w * valid * weights[..., lvl, :].double())[b, :, m]  # (Q, P)
                        out[b, :, m] += (sampled * coef[..., None]).sum(1)
    return out.reshape(B, Q, M * D).float()


def test_ms_deform_attn_matches_naive_sampling():
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
    g = torch.Generator().manual_seed(0)
    shapes = [(6, 8), (3, 4), (2, 2)]
    B, M, D, Q, P = 2, 2, 4, 5, 3
    value = torch.randn(B, sum(h * w for h, w in shapes), M, D, generator=g)
    # some locations fall outside [0, 1] to exercise the zero padding
    locations = torch.rand(B, Q, M, len(shapes), P, 2, generator=g) * 1.2 - 0.1
    weights = torch.rand(B, Q, M, len(shapes), P, generator=g)
    ours = multi_scale_deformable_attn_pytorch(value, torch.tensor(shapes), locations, weights)
    ref = _naive_ms_deform_attn(value, shapes, locations, weights)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='the compiled kernel of MSDA exists only for CUDA')
def test_ms_deform_attn_cuda_kernel_matches_pytorch():
    from mmcv.ops.multi_scale_deform_attn import (MultiScaleDeformableAttnFunction,
                                                  multi_scale_deformable_attn_pytorch)
    g = torch.Generator().manual_seed(0)
    shapes = torch.tensor([(16, 20), (8, 10), (4, 5)])
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    value = torch.randn(2, int(shapes.prod(1).sum()), 4, 32, generator=g)
    loc = torch.rand(2, 50, 4, 3, 4, 2, generator=g)
    w = torch.rand(2, 50, 4, 3, 4, generator=g).softmax(-1)
    ref = multi_scale_deformable_attn_pytorch(value, shapes, loc, w)
    out = MultiScaleDeformableAttnFunction.apply(value.cuda(), shapes.cuda(), start.cuda(), loc.cuda(),
                                                 w.cuda(), 64)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-4)


def test_mmcv_msda_module_on_cpu_uses_the_pytorch_path():
    """mmcv's module, on CPU, equals its own projections composed with the pure-PyTorch function."""
    from mmcv.ops import MultiScaleDeformableAttention
    from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
    torch.manual_seed(0)
    attn = MultiScaleDeformableAttention(embed_dims=32, num_heads=4, num_levels=2, num_points=2,
                                         batch_first=True, dropout=0.0).eval()
    for p in attn.parameters():  # the default init zeroes offsets/weights: make them non-trivial
        torch.nn.init.normal_(p, std=0.1)
    shapes = torch.tensor([(8, 8), (4, 4)])
    start = torch.tensor([0, 64])
    value = torch.randn(1, 80, 32)
    query = torch.randn(1, 10, 32)
    ref_pts = torch.rand(1, 10, 2, 2)
    out = attn(query, value=value, reference_points=ref_pts, spatial_shapes=shapes,
               level_start_index=start)
    v = attn.value_proj(value).view(1, 80, 4, 8)
    off = attn.sampling_offsets(query).view(1, 10, 4, 2, 2, 2)
    w = attn.attention_weights(query).view(1, 10, 4, 4).softmax(-1).view(1, 10, 4, 2, 2)
    norm = torch.stack([shapes[:, 1], shapes[:, 0]], -1)
    loc = ref_pts[:, :, None, :, None, :] + off / norm[None, None, None, :, None, :]
    ref = attn.output_proj(multi_scale_deformable_attn_pytorch(v, shapes, loc, w)) + query
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope='module')
def stock_mask_rcnn(tmp_path_factory):
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg_file = tmp_path_factory.mktemp('cfg') / 'stock.py'
    cfg_file.write_text("_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'\n"
                        "model = dict(backbone=dict(init_cfg=None, depth=18), "
                        "neck=dict(in_channels=[64, 128, 256, 512]))\n")
    cfg = Config.fromfile(str(cfg_file))
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def test_stock_mask_rcnn_trains_one_step_and_predicts_on_cpu(stock_mask_rcnn):
    from mmengine.optim import OptimWrapper
    from mmdet.testing import demo_mm_inputs
    model = stock_mask_rcnn
    model.train()
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 224, 256), (3, 192, 224)], num_items=[3, 2],
                          num_classes=80, with_mask=True)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    before = model.roi_head.bbox_head.fc_cls.weight.detach().clone()
    losses = model.train_step(data, optim)
    for name in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'):
        assert name in losses and torch.isfinite(losses[name]).all(), name
    assert not torch.equal(before, model.roi_head.bbox_head.fc_cls.weight)

    model.eval()
    with torch.no_grad():
        (pred,) = model.test_step(demo_mm_inputs(batch_size=1, image_shapes=[(3, 224, 256)],
                                                 with_mask=True))
    inst = pred.pred_instances
    assert inst.bboxes.shape[1] == 4 and inst.scores.shape[0] == inst.bboxes.shape[0]
    h, w = pred.ori_shape
    assert inst.masks.shape[1:] == (h, w)
    assert np.all(np.isfinite(inst.bboxes.numpy()))


def test_mmcv_roi_align_misreads_channels_last_maps():
    """Why the backbone returns contiguous NCHW maps: mmcv's CPU RoIAlign reads the memory as NCHW
    whatever the strides. When an mmcv release fixes this, the test fails and the note can go."""
    from mmcv.ops import RoIAlign
    x = torch.randn(2, 8, 20, 24, generator=torch.Generator().manual_seed(0))
    rois = torch.tensor([[0, 1., 2., 15., 12.], [1, 3., 1., 20., 18.]])
    op = RoIAlign((7, 7), 1.0, sampling_ratio=2, aligned=True)
    assert not torch.allclose(op(x.contiguous(memory_format=torch.channels_last), rois), op(x, rois))
