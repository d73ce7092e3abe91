"""CUDA tests (marker ``cuda``): each checks the GPU path against an independent computation.

Run on a GPU node with ``pytest tests/cuda -m cuda`` (tools/gpu/check.sh does, and reports). Without
CUDA every test here is skipped at collection, so ``pytest tests`` stays green on CPU machines.
"""
import copy
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NO_CUDA = not torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skipif(NO_CUDA, reason='needs a CUDA GPU (run tools/gpu/check.sh on a GPU node)')
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.cuda)
            item.add_marker(skip)


@pytest.fixture(scope='module', autouse=True)
def no_tf32():
    """fp32 matmuls and convolutions in full fp32 in every CUDA test module, module-scoped fixtures
    (baselines) included (TF32 would give ~1e-3 relative errors)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(scope='session')
def detector_cfg():
    """arch ('s', 'b', 'l', 'g') -> the model dict of configs/vit_adapter/mask-rcnn_dinov2-adapter-
    {arch}_fpn_3x_coco.py, with no pretrained file and plain BN."""
    from mmengine.config import Config, ConfigDict

    from mmdet_dinov2.engine.launch import replace_sync_bn

    def get(arch, **backbone):
        cfg = Config.fromfile(str(ROOT / f'configs/vit_adapter/mask-rcnn_dinov2-adapter-{arch}_fpn_3x_coco.py'))
        model = cfg.model.to_dict()
        replace_sync_bn(model)  # one process
        model = ConfigDict(model)  # mmdet's detectors read train_cfg.rpn
        model['backbone'].update(pretrained=None, **backbone)
        return model
    return get


@pytest.fixture(scope='session')
def build_detector(detector_cfg):
    """build_detector(arch, seed=0, **backbone overrides) -> a Mask R-CNN on the CPU, train mode."""
    import mmdet_dinov2  # noqa: F401  (registers ViTAdapter)
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)

    def build(arch, seed=0, **backbone):
        torch.manual_seed(seed)
        model = MODELS.build(detector_cfg(arch, **backbone))
        model.init_weights()
        return model.train()
    return build


@pytest.fixture(scope='session')
def backbone_cfg(detector_cfg):
    """arch -> the ViTAdapter keyword arguments of that config (no type, no weights, plain BN)."""
    def get(arch, **overrides):
        settings = copy.deepcopy(detector_cfg(arch)['backbone'])
        settings.pop('type')
        settings.update(overrides)
        return settings
    return get


@pytest.fixture(scope='session')
def detection_batch():
    """detection_batch(size, batch, device) -> mmdet's packed inputs (images, boxes, labels, masks)."""
    from mmdet.testing import demo_mm_inputs

    def make(size=1024, batch=2, seed=0):
        torch.manual_seed(seed)
        packed = demo_mm_inputs(batch_size=batch, image_shapes=(3, size, size), num_items=[5] * batch,
                                num_classes=80, with_mask=True)
        return packed
    return make


def rel_err(got, ref):
    """max |got - ref| / max |ref|: one number per tensor, robust to entries near zero."""
    got, ref = got.detach().double().cpu(), ref.detach().double().cpu()
    return ((got - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


@pytest.fixture(scope='session')
def relative_error():
    return rel_err
