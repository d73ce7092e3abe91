"""A checkpoint carrying a pickle payload is refused on every path where the project takes a
checkpoint (the payload never runs), loads when the user vouches for it; legitimate files load."""
import os
import zipfile

import pytest
import torch

from mmdet_dinov2.checkpoints import UnsafeCheckpointError
from tests import fake_checkpoints as fake
from tests.checkpoints import gadgets
from tests.coco_data import CLASSES
from tests.helpers import build_runner, load_tool, serve_folder, tiny_config

pytestmark = pytest.mark.usefixtures('plain_config_text', 'one_thread')


@pytest.fixture
def evil(trained, tmp_path):
    """``trained`` with a payload in its meta (zip format), and where the payload would write."""
    from mmdet_dinov2.checkpoints import load_checkpoint_file
    checkpoint = load_checkpoint_file(trained)
    marker = tmp_path / 'PAYLOAD_RAN'
    checkpoint['meta']['note'] = gadgets.Payload(marker)
    path = tmp_path / 'evil.pth'
    torch.save(checkpoint, path)
    return path, marker


def refused(cfg, load, path, global_name):
    """Run ``load`` and return the refusal, which must name ``global_name``."""
    with pytest.raises((UnsafeCheckpointError, SystemExit)) as error:
        load(cfg, path)
    assert 'refusing to load' in str(error.value) and global_name in str(error.value)
    return error


# ------------------------------------------------------------------ every path refuses the payload
def _train(cfg):
    build_runner(cfg).train()


def via_mmengine_load_checkpoint(cfg, path):
    from mmdet.registry import MODELS
    from mmengine.runner import load_checkpoint
    load_checkpoint(MODELS.build(cfg.model), str(path))


def via_mmdet_init_detector(cfg, path):
    from mmdet.apis import init_detector
    init_detector(cfg, str(path), device='cpu')


def via_detector_init_cfg(cfg, path):
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint=str(path))
    _train(cfg)


def via_backbone_pretrained(cfg, path):
    cfg.model.backbone.pretrained = str(path)
    _train(cfg)


def via_backbone_init_cfg(cfg, path):
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(path))
    _train(cfg)


def via_load_from(cfg, path):
    cfg.load_from = str(path)
    _train(cfg)


def via_resume_from(cfg, path):
    cfg.load_from, cfg.resume = str(path), True
    _train(cfg)


def via_auto_resume(cfg, path):
    os.makedirs(cfg.work_dir, exist_ok=True)
    with open(os.path.join(cfg.work_dir, 'last_checkpoint'), 'w') as f:
        f.write(str(path))
    cfg.resume = True
    _train(cfg)


def via_url(cfg, path):
    from mmdet.registry import MODELS
    from mmengine.runner import load_checkpoint
    with serve_folder(path.parent) as url:
        load_checkpoint(MODELS.build(cfg.model), f'{url}/{path.name}')


def via_legacy_format(cfg, path):
    from mmdet.registry import MODELS
    from mmengine.runner import load_checkpoint
    legacy = path.with_name('legacy.pth')
    torch.save({'meta': {'note': gadgets.Payload(path.parent / 'PAYLOAD_RAN')}}, legacy,
               _use_new_zipfile_serialization=False)
    load_checkpoint(MODELS.build(cfg.model), str(legacy))


def via_train_tool_resume(cfg, path):
    cfg.dump(str(path.with_name('cfg.py')))
    load_tool('tools/train.py').main([str(path.with_name('cfg.py')), '--resume', str(path)])


def via_test_tool(cfg, path):
    cfg.dump(str(path.with_name('cfg.py')))
    load_tool('tools/test.py').main([str(path.with_name('cfg.py')), str(path)])


def via_convert_tool(cfg, path):
    torch.save(dict(fake.dinov2(64), payload=gadgets.Payload(path.parent / 'PAYLOAD_RAN')),
               path.with_name('dinov2_vits14_pretrain.pth'))
    load_tool('tools/convert_14to16.py').main([str(path.with_name('dinov2_vits14_pretrain.pth'))])


@pytest.mark.parametrize('load', [
    via_mmengine_load_checkpoint, via_mmdet_init_detector, via_detector_init_cfg,
    via_backbone_pretrained, via_backbone_init_cfg, via_load_from, via_resume_from,
    via_auto_resume, via_url, via_legacy_format, via_train_tool_resume, via_test_tool,
    via_convert_tool], ids=lambda f: f.__name__[4:])
def test_every_path_refuses_a_pickle_payload(tiny_data, tmp_path, evil, load):
    path, marker = evil
    error = refused(tiny_config(tiny_data, tmp_path / 'work'), load, path, 'posix.system')
    named = f'{path.name} (downloaded from http://' if load is via_url else str(path.parent)
    assert named in str(error.value)  # names the file
    assert not marker.exists(), 'the payload ran'


# ------------------------------------------------------------------ trust lets a vouched file in
def test_config_key_trust_checkpoint_lets_resume_load_it(tiny_data, tmp_path, evil):
    path, marker = evil
    cfg = tiny_config(tiny_data, tmp_path / 'work', **{'train_cfg.max_epochs': 2})
    cfg.trust_checkpoint, cfg.resume, cfg.load_from = True, True, str(path)
    build_runner(cfg).train()
    assert marker.exists()
    assert (tmp_path / 'work' / 'epoch_2.pth').is_file()


def test_trust_checkpoint_flag_lets_the_test_tool_load_it(tiny_data, tmp_path, evil):
    path, marker = evil
    tiny_config(tiny_data, tmp_path / 'work').dump(str(tmp_path / 'cfg.py'))
    metrics = load_tool('tools/test.py').main([str(tmp_path / 'cfg.py'), str(path),
                                                 '--trust-checkpoint'])
    assert marker.exists() and 'coco/segm_mAP' in metrics


def test_trusted_checkpoints_context_lets_the_api_load_it(tiny_data, tmp_path, evil):
    from mmdet.registry import MODELS
    from mmengine.runner import load_checkpoint

    from mmdet_dinov2.checkpoints import checkpoints_trusted, trusted_checkpoints
    path, marker = evil
    with trusted_checkpoints():
        checkpoint = load_checkpoint(MODELS.build(tiny_config(tiny_data, tmp_path).model),
                                     str(path))
    assert marker.exists() and checkpoint['meta']['note'] == 0  # os.system's exit status
    assert not checkpoints_trusted()


# ------------------------------------------------------------------ legitimate files load safely
def test_own_checkpoint_and_safetensors_load_without_trust(tiny_data, tmp_path, trained):
    from mmdet.registry import MODELS
    from mmengine.runner import load_checkpoint
    from safetensors.torch import save_file
    cfg = tiny_config(tiny_data, tmp_path)
    model = MODELS.build(cfg.model)
    checkpoint = load_checkpoint(model, str(trained), strict=True)
    assert 'message_hub' in checkpoint and 'optimizer' in checkpoint
    tensors = {k: v.clone() for k, v in checkpoint['state_dict'].items()}
    save_file(tensors, tmp_path / 'weights.safetensors')
    other = MODELS.build(cfg.model)
    load_checkpoint(other, str(tmp_path / 'weights.safetensors'), strict=True)
    assert all(torch.equal(other.state_dict()[k], v) for k, v in tensors.items())


def as_saved_under_numpy1(path):
    """Rewrite a zip checkpoint's pickle as numpy 1.x wrote it (numpy.core, not numpy._core)."""
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
        for info, data in entries:
            if info.filename.endswith('data.pkl'):
                assert b'numpy._core.multiarray' in data
                data = data.replace(b'numpy._core.', b'numpy.core.')
            archive.writestr(info, data)


def test_mmdet2_release_with_numpy1_meta_loads_without_trust(tiny_data, tmp_path, trained):
    """What the original ViT-Adapter (mmcv 1.x runner, numpy 1.x) put in a released file loads."""
    import numpy as np

    from mmdet_dinov2.checkpoints import load_checkpoint_file
    state_dict = load_checkpoint_file(trained)['state_dict']
    path = tmp_path / 'mask_rcnn_dinov2_adapter_small_fpn_3x_coco.pth'
    torch.save(fake.vit_adapter_detector(state_dict, CLASSES), path)
    as_saved_under_numpy1(path)
    assert load_checkpoint_file(path)['meta']['hook_msgs']['best_score'] == np.float32(0.515)
    cfg = tiny_config(tiny_data, tmp_path / 'work')
    cfg.dump(str(tmp_path / 'cfg.py'))
    metrics = load_tool('tools/test.py').main([str(tmp_path / 'cfg.py'), str(path)])
    assert 'coco/bbox_mAP' in metrics


# ------------------------------------------------------------------ the getattr gadget, every path
@pytest.fixture
def gadget(tmp_path):
    """A checkpoint whose pickle uses only allow-listed globals to reach eval."""
    marker = tmp_path / 'PAYLOAD_RAN'
    payload = gadgets.eval_gadget(marker, tensor=True)
    return gadgets.write(tmp_path / 'gadget.pth', payload), marker


def via_convert_tool_input(cfg, path):
    load_tool('tools/convert_14to16.py').main([str(path), '--out', str(path.with_name('o.pth'))])


@pytest.mark.parametrize('load', [
    via_mmengine_load_checkpoint, via_mmdet_init_detector, via_detector_init_cfg,
    via_backbone_pretrained, via_backbone_init_cfg, via_load_from, via_resume_from,
    via_auto_resume, via_url, via_train_tool_resume, via_test_tool, via_convert_tool_input],
    ids=lambda f: f.__name__[4:])
def test_every_path_refuses_the_getattr_gadget(tiny_data, tmp_path, gadget, load):
    path, marker = gadget
    refused(tiny_config(tiny_data, tmp_path / 'work'), load, path, 'builtins.getattr')
    assert not marker.exists(), 'the payload ran'
