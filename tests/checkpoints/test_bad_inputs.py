"""Bad checkpoint files through the user's path (config -> runner): a clear error naming the file
and what to do, or correct behaviour where there is one."""
import re

import pytest
import torch

from mmdet_dinov2.checkpoints import CheckpointError
from tests import fake_checkpoints as fake
from tests.helpers import load_tool, tiny_config, train

pytestmark = pytest.mark.usefixtures('plain_config_text', 'one_thread')


def backbone_cfg(data, tmp_path, path, **options):
    """The tiny config for one epoch from backbone weights ``path`` (DINOv2's 37x37 grid)."""
    return tiny_config(data, tmp_path / 'work', **{
        'train_cfg.max_epochs': 1, 'model.backbone.pretrain_size': 592,
        'model.backbone.img_size': 592, 'model.backbone.pretrained': str(path), **options})


@pytest.mark.parametrize('content, error, expected', [
    (None, FileNotFoundError, 'checkpoint file not found'),
    (b'', CheckpointError, 'is empty (0 bytes)'),
    ('truncated', CheckpointError, 'truncated, corrupt, or not a checkpoint'),
], ids=['missing', 'empty', 'truncated'])
def test_missing_empty_or_truncated_backbone_file(tiny_data, tmp_path, content, error,
                                                   expected):
    path = tmp_path / 'dinov2_vits14_pretrain.pth'
    if content == 'truncated':
        torch.save(fake.dinov2(64), path)
        path.write_bytes(path.read_bytes()[:20000])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=re.escape(expected)) as info:
        train(backbone_cfg(tiny_data, tmp_path, path))
    assert str(path) in str(info.value)


def test_missing_pretrained_file_stops_train_tool_with_download_and_convert_commands(
        tiny_data, tmp_path):
    cfg = backbone_cfg(tiny_data, tmp_path, tmp_path / 'dinov2_vits14_pretrain_14to16.pth')
    cfg.dump(str(tmp_path / 'cfg.py'))
    with pytest.raises(SystemExit) as info:
        load_tool('tools/train.py').main([str(tmp_path / 'cfg.py')])
    message = str(info.value)
    url = 'https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth'
    assert url in message
    assert 'tools/convert_14to16.py' in message


def test_backbone_of_another_size_names_the_shapes(tiny_data, tmp_path):
    path = tmp_path / 'wider.pth'
    torch.save(fake.dinov2(96), path)  # "S into B": another width
    with pytest.raises(ValueError) as info:
        train(backbone_cfg(tiny_data, tmp_path, path))
    message = str(info.value)
    assert str(path) in message and 'wrong shape' in message
    assert 'checkpoint (96, 3, 16, 16), model (64, 3, 16, 16)' in message
    assert 'weights (dim 96) into a ViT with dim 64 model' in message


def test_backbone_of_another_family_is_named_as_such(tiny_data, tmp_path):
    path = tmp_path / 'resnet50.pth'
    torch.save({'conv1.weight': torch.randn(64, 3, 7, 7), 'bn1.weight': torch.ones(64),
                'layer1.0.conv1.weight': torch.randn(64, 64, 1, 1),
                'fc.weight': torch.randn(10, 8)},
               path)
    with pytest.raises(ValueError, match='not a DINOv2/ViT-Adapter checkpoint') as info:
        train(backbone_cfg(tiny_data, tmp_path, path))
    assert 'conv1.weight' in str(info.value)


def test_raw_14_patch_file_is_converted_and_says_so(tiny_data, tmp_path):
    path = tmp_path / 'dinov2_vits14_pretrain.pth'
    raw = fake.dinov2(64)
    torch.save(raw, path)
    runner, log = train(backbone_cfg(tiny_data, tmp_path, path,
                                        **{'train_cfg.max_epochs': 0}))
    assert 'format dinov2' in log and 'converted:' in log and '14x14 -> 16x16' in log
    backbone = runner.model.backbone
    assert torch.equal(backbone.blocks[1].gamma2, raw['blocks.1.ls2.gamma'])
    assert torch.equal(backbone.pos_embed, raw['pos_embed'])


def test_reg4_file_into_a_model_without_registers_is_refused_naming_the_reg4_config(
        tiny_data, tmp_path):
    """The registers cannot be dropped silently (the ViT was trained with them)."""
    path = tmp_path / 'dinov2_vits14_reg4_pretrain.pth'
    torch.save(fake.dinov2(64, registers=4), path)
    with pytest.raises(ValueError, match=r'reg4 checkpoint.*4 register tokens.*'
                       r'mask-rcnn_dinov2-reg4-adapter-') as info:
        train(backbone_cfg(tiny_data, tmp_path, path, **{'train_cfg.max_epochs': 0}))
    assert str(path) in str(info.value)
