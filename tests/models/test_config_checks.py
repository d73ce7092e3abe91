"""check_backbone_neck: the backbone's maps against the neck's in_channels, named by config key."""
import copy

import pytest
from mmengine.config import Config

from mmdet_dinov2.models import check_backbone_neck
from mmdet_dinov2.models.backbones import ViTAdapter

S_CONFIG = 'configs/vit_adapter/mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py'
QUICKSTART = 'configs/quickstart/mask-rcnn_vit-adapter-tiny_fpn_shapes.py'


@pytest.fixture(scope='module')
def s_model():
    """The S config's model dict (ConfigDict), read once; copy before changing."""
    return Config.fromfile(S_CONFIG).model


@pytest.mark.parametrize('path', [S_CONFIG, QUICKSTART])
def test_the_real_configs_pass(path):
    check_backbone_neck(Config.fromfile(path).model)


def test_the_s_config_still_passes_as_a_plain_dict(s_model):
    check_backbone_neck(s_model.to_dict())


@pytest.mark.parametrize('out_indices', [(1, 2, 3), [0, 2]])
def test_fewer_maps_than_neck_inputs(s_model, out_indices):
    model = copy.deepcopy(s_model)
    model.backbone.out_indices = out_indices
    with pytest.raises(ValueError) as info:
        check_backbone_neck(model)
    message = str(info.value)
    assert f'model.backbone.out_indices={out_indices!r}' in message, message
    assert 'model.neck.in_channels=[384, 384, 384, 384]' in message, message
    assert f'[384] * {len(out_indices)}' in message, message  # the fix


def test_neck_widths_other_than_embed_dim(s_model):
    model = copy.deepcopy(s_model)
    model.neck.in_channels = [384, 384, 256, 384]
    with pytest.raises(ValueError) as info:
        check_backbone_neck(model)
    message = str(info.value)
    assert 'model.neck.in_channels=[384, 384, 256, 384]' in message, message
    assert 'model.backbone.embed_dim=384' in message and '[256]' in message, message


def test_both_problems_in_one_message(s_model):
    model = copy.deepcopy(s_model)
    model.backbone.embed_dim = 768
    model.neck.in_channels = [384] * 3
    with pytest.raises(ValueError) as info:
        check_backbone_neck(model)
    message = str(info.value)
    for words in ('model.backbone.out_indices=', 'model.neck.in_channels=[384, 384, 384]',
                  'model.backbone.embed_dim=768', '[768] * 4'):
        assert words in message, (words, message)


def test_a_neck_in_channels_that_is_not_a_list(s_model):
    model = copy.deepcopy(s_model)
    model.neck.in_channels = 384
    with pytest.raises(ValueError, match=r'model\.neck\.in_channels=384'):
        check_backbone_neck(model)


def test_a_bad_out_indices_is_named_with_its_key(s_model):
    model = copy.deepcopy(s_model)
    model.backbone.out_indices = (0, 4)
    with pytest.raises(ValueError, match=r'model\.backbone\.out_indices=\(0, 4\)'):
        check_backbone_neck(model)


@pytest.mark.parametrize('backbone_type', ['ViTAdapter', 'mmdet.ViTAdapter', ViTAdapter])
def test_defaults_are_the_backbones(backbone_type):
    """Without embed_dim and out_indices the constructor's defaults count: 4 maps of 768."""
    model = dict(backbone=dict(type=backbone_type), neck=dict(type='FPN', in_channels=[768] * 4))
    check_backbone_neck(model)
    model['neck']['in_channels'] = [384] * 4
    with pytest.raises(ValueError, match='model.backbone.embed_dim=768'):
        check_backbone_neck(model)


@pytest.mark.parametrize('model', [
    dict(backbone=dict(type='ResNet', depth=50), neck=dict(type='FPN', in_channels=[256, 512, 1024, 2048])),
    dict(backbone=dict(type='ViTAdapter', embed_dim=384)),                  # no neck
    dict(backbone=dict(type='ViTAdapter', embed_dim=384), neck=dict(type='ChannelMapper')),
])
def test_other_models_are_left_alone(model):
    check_backbone_neck(model)
