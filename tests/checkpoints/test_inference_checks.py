"""The inference paths (mmdet_dinov2.apis' DetInferencer and init_detector, the image and video
demos) check detector weights as tools/test.py does: NaN/inf, tensors of another shape, missing
parts, integers under float names are refused naming the file and the tensors; ``partial_load``
loads what fits. tools/test.py stops when the evaluation has no result."""
from logging.handlers import BufferingHandler

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger

from mmdet_dinov2.apis import DetInferencer, init_detector
from mmdet_dinov2.checkpoints import (CheckpointError, CheckpointMismatchError, load_checkpoint_file,
                                      trusted_checkpoints)
from tests.helpers import REPO, load_tool, tiny_config

pytestmark = pytest.mark.usefixtures('plain_config_text', 'one_thread')


def edited(trained, path, edit):
    """``trained`` with its state dict changed by ``edit(state_dict)``, saved to ``path``."""
    checkpoint = load_checkpoint_file(trained)
    edit(checkpoint['state_dict'])
    torch.save(checkpoint, path)
    return path


def poison(state_dict):
    state_dict['roi_head.mask_head.conv_logits.bias'][0] = float('nan')


def drop_box_head(state_dict):
    for key in [k for k in state_dict if k.startswith('roi_head.bbox_head.')]:
        del state_dict[key]


def widen(state_dict):
    state_dict['backbone.patch_embed.proj.weight'] = torch.zeros(96, 3, 16, 16)


@pytest.fixture(scope='module')
def config_file(tiny_data, tmp_path_factory):
    path = tmp_path_factory.mktemp('config') / 'tiny.py'
    tiny_config(tiny_data, path.parent / 'work').dump(str(path))
    return str(path)


@pytest.mark.parametrize('edit, message', [
    (poison, r'1 tensors hold NaN or inf: roi_head.mask_head.conv_logits.bias \(1 values\)'),
    (drop_box_head, r'of the model\'s tensors are missing \(roi_head.bbox_head: 8\)'),
    (widen, r'backbone.patch_embed.proj.weight \(96, 3, 16, 16\) vs model \(64, 3, 16, 16\)'),
])
def test_the_inferencer_refuses_what_the_test_tool_refuses(trained, tmp_path, config_file, edit,
                                                           message):
    path = edited(trained, tmp_path / 'bad.pth', edit)
    with pytest.raises(CheckpointMismatchError, match=rf'{path} does not fit the model(?s:.*){message}'):
        DetInferencer(config_file, str(path), device='cpu')


def test_partial_load_is_the_same_switch(trained, tmp_path, tiny_data):
    path = edited(trained, tmp_path / 'no_box_head.pth', drop_box_head)
    cfg = tiny_config(tiny_data, tmp_path, partial_load=True)
    log = BufferingHandler(1000)
    logger = MMLogger.get_current_instance()
    logger.addHandler(log)
    try:
        model = DetInferencer(cfg, str(path), device='cpu').model
    finally:
        logger.removeHandler(log)
    expected = load_checkpoint_file(trained)['state_dict']['rpn_head.rpn_conv.weight']
    assert torch.equal(model.rpn_head.rpn_conv.weight, expected)
    assert model.dataset_meta['classes'] == ('circle', 'triangle', 'rectangle', 'star')
    assert any(record.getMessage().startswith(
        'partial_load: 8 of the model\'s tensors are missing (roi_head.bbox_head: 8)')
        for record in log.buffer)
    for partial in (False, 'yes'):  # the argument overrides the config; a non-bool is an error
        with pytest.raises((CheckpointMismatchError, TypeError), match='partial_load'):
            DetInferencer(cfg, str(path), device='cpu', partial_load=partial)
    with pytest.raises(CheckpointMismatchError):  # NaN is refused even with partial_load
        DetInferencer(cfg, str(edited(trained, tmp_path / 'nan.pth', poison)), device='cpu')


def test_the_config_in_a_checkpoint_is_read_as_data_never_run(trained, tmp_path):
    """MODEL given as the checkpoint alone: mmengine would execute the config text it holds."""
    model = DetInferencer(None, str(trained), device='cpu').model
    assert model.dataset_meta['classes'] == ('circle', 'triangle', 'rectangle', 'star')
    assert model.roi_head.bbox_head.fc_cls.out_features == 5  # the checkpoint's config, 4 + 1
    marker = tmp_path / 'RAN'
    checkpoint = load_checkpoint_file(trained)
    config = checkpoint['message_hub']['runtime_info']['cfg']
    for code, why in ((f"import os\nos.system('touch {marker}')\n", 'line 1 is not an assignment'),
                      (f"x = __import__('os').system('touch {marker}')\n",
                       r"line 1: __import__\('os'\).* is not a value")):
        checkpoint['message_hub']['runtime_info']['cfg'] = checkpoint['meta']['cfg'] = code + config
        torch.save(checkpoint, tmp_path / 'code.pth')
        with pytest.raises(CheckpointError, match=rf'code.pth: the config it holds is more than '
                                                  rf'data \({why}'):
            DetInferencer(None, str(tmp_path / 'code.pth'), device='cpu')
    assert not marker.exists()
    with trusted_checkpoints():  # the user vouches for the file: mmengine's reading
        DetInferencer(None, str(tmp_path / 'code.pth'), device='cpu')
    assert marker.exists()


def test_init_detector_checks_and_loads(trained, tmp_path, config_file):
    model = init_detector(config_file, str(trained), device='cpu')
    expected = load_checkpoint_file(trained)['state_dict']['backbone.blocks.1.attn.qkv.weight']
    assert torch.equal(model.backbone.blocks[1].attn.qkv.weight, expected)
    assert model.dataset_meta['classes'] == ('circle', 'triangle', 'rectangle', 'star')
    path = edited(trained, tmp_path / 'nan.pth', poison)
    with pytest.raises(CheckpointMismatchError, match='conv_logits.bias'):
        init_detector(config_file, str(path), device='cpu')
    with pytest.raises(CheckpointMismatchError, match=r'another shape.*fc_cls.weight'):
        init_detector(config_file, str(trained), device='cpu',
                      cfg_options={'model.roi_head.bbox_head.num_classes': 5})


def test_the_demos_refuse_a_damaged_checkpoint(trained, tmp_path, config_file, tiny_data,
                                               monkeypatch):
    path = edited(trained, tmp_path / 'nan.pth', poison)
    image = str(next((tiny_data / 'val').iterdir()))
    image_demo = load_tool('demo/image_demo.py').main
    with pytest.raises(CheckpointMismatchError, match='conv_logits.bias'):
        image_demo([image, config_file, '--weights', str(path), '--device', 'cpu',
                    '--out-dir', str(tmp_path / 'out')])
    assert not (tmp_path / 'out' / 'preds').exists()
    video = tmp_path / 'in.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 5, (64, 64))
    for _ in range(2):
        writer.write(np.zeros((64, 64, 3), np.uint8))
    writer.release()
    monkeypatch.syspath_prepend(str(REPO / 'demo'))  # video_demo imports image_demo
    video_demo = load_tool('demo/video_demo.py').main
    with pytest.raises(CheckpointMismatchError, match='conv_logits.bias'):
        video_demo([str(video), config_file, str(path), '--device', 'cpu', '--out',
                    str(tmp_path / 'out.mp4')])
    path = edited(trained, tmp_path / 'nobox.pth', drop_box_head)
    arguments = [image, config_file, '--weights', str(path), '--device', 'cpu', '--no-save-vis',
                 '--no-save-pred']
    with pytest.raises(CheckpointMismatchError, match=r'missing \(roi_head.bbox_head: 8\)'):
        image_demo(arguments)
    results = image_demo(arguments + ['--partial-load'])
    assert len(results['predictions']) == 1


def test_the_test_tool_stops_when_the_evaluation_has_no_result(trained, tmp_path, tiny_data):
    """No detection above the score threshold: CocoMetric logs an error and returns no metric."""
    tiny_config(tiny_data, tmp_path / 'work', **{'model.test_cfg.rcnn.score_thr': 1.01}).dump(
        str(tmp_path / 'cfg.py'))
    with pytest.raises(SystemExit, match=r'no metric.*2 test images.*score_thr'):
        load_tool('tools/test.py').main([str(tmp_path / 'cfg.py'), str(trained)])
