"""check_backbone_neck: the backbone's maps against the neck's in_channels; check_num_classes: the
heads' num_classes against each other and the datasets' classes. Each named by config key."""
import copy
import re

import pytest
from mmengine.config import Config

from mmdet_dinov2.models import check_backbone_neck, check_num_classes
from mmdet_dinov2.models.config_checks import _head_num_classes
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


# ------------------------------------------------------------------ num_classes vs the dataset
CASCADE = 'configs/vit_adapter/cascade-mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py'
DINO = 'configs/vit_adapter/dino-4scale_dinov2-adapter-s_12e_coco.py'
TINY = 'tests/tools/tiny_config.py'


@pytest.mark.parametrize('path', [S_CONFIG, QUICKSTART, CASCADE, DINO, TINY])
def test_the_real_configs_have_as_many_classes_as_their_datasets(path):
    cfg = Config.fromfile(path)
    heads = _head_num_classes(cfg.model, 'model')
    assert heads and all(num == (80 if 'coco' in path else 4) for _, num in heads), heads
    check_num_classes(cfg)


def test_the_heads_that_count(s_model):
    cfg = Config.fromfile(CASCADE)
    assert [key for key, _ in _head_num_classes(cfg.model, 'model')] == [
        'model.roi_head.bbox_head[0].num_classes', 'model.roi_head.bbox_head[1].num_classes',
        'model.roi_head.bbox_head[2].num_classes', 'model.roi_head.mask_head.num_classes']
    assert 'rpn_head' not in str(_head_num_classes(s_model, 'model'))  # its one class: objectness


def test_a_head_with_fewer_classes_than_the_dataset_is_refused():
    cfg = Config.fromfile(TINY)
    cfg.merge_from_dict({'model.roi_head.bbox_head.num_classes': 3,
                         'model.roi_head.mask_head.num_classes': 3})
    with pytest.raises(ValueError) as info:
        check_num_classes(cfg)
    assert str(info.value) == (
        'model.roi_head.bbox_head.num_classes=3 but train_dataloader.dataset.metainfo.classes '
        "lists 4 classes ('circle', 'triangle', 'rectangle', 'star'): set num_classes=4 in every "
        'box and mask head (model.roi_head.bbox_head.num_classes, '
        'model.roi_head.mask_head.num_classes), or list the classes the model is for')


@pytest.mark.parametrize('path, key', [
    (TINY, 'model.roi_head.mask_head.num_classes'),
    (CASCADE, 'model.roi_head.bbox_head[2].num_classes')])
def test_box_and_mask_heads_that_disagree_are_refused(path, key):
    cfg = Config.fromfile(path)
    heads = _head_num_classes(cfg.model, 'model')
    node = cfg.model.roi_head
    head = node.mask_head if key.endswith('mask_head.num_classes') else node.bbox_head[2]
    head.num_classes = heads[0][1] + 1
    with pytest.raises(ValueError, match=re.escape(
            f'{heads[0][0]}={heads[0][1]} and {key}={heads[0][1] + 1} disagree')):
        check_num_classes(cfg)


def test_the_dataset_classes_default_to_its_type_and_pass_through_wrappers():
    cfg = Config.fromfile(S_CONFIG)  # CheckedCocoDataset without metainfo: COCO's 80 classes
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=2,
                                        dataset=dict(cfg.train_dataloader.dataset))
    check_num_classes(cfg)
    cfg.train_dataloader.dataset.dataset.metainfo = dict(classes=('cat', 'dog'))
    with pytest.raises(ValueError, match=re.escape(
            'model.roi_head.bbox_head.num_classes=80 but train_dataloader.dataset.dataset.'
            "metainfo.classes lists 2 classes ('cat', 'dog')")):
        check_num_classes(cfg)
    cfg.train_dataloader.dataset.dataset.metainfo = None
    cfg.model.roi_head.bbox_head.num_classes = cfg.model.roi_head.mask_head.num_classes = 4
    with pytest.raises(ValueError, match=re.escape(
            "num_classes=4 but train_dataloader.dataset.dataset (CheckedCocoDataset's METAINFO) "
            'lists 80 classes')):
        check_num_classes(cfg)


def test_training_stops_before_it_starts(tmp_path):
    """Through the runner, as tools/train.py builds it: refused before the model is built."""
    from tests.helpers import build_runner, tiny_config
    cfg = tiny_config(tmp_path, tmp_path / 'work', **{
        'model.roi_head.bbox_head.num_classes': 3, 'model.roi_head.mask_head.num_classes': 3})
    with pytest.raises(ValueError, match='model.roi_head.bbox_head.num_classes=3 but '
                                         'train_dataloader.dataset.metainfo.classes lists 4'):
        build_runner(cfg)


@pytest.mark.parametrize('build', ['MODELS.build', 'init_detector'])
def test_a_mismatch_built_through_the_api_names_the_keys(build):
    """Outside the runner (no config check ran), the detector refuses its neck while it is built,
    where mmdet's FPN would raise a bare AssertionError at the first forward."""
    from mmdet.apis import init_detector
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = Config.fromfile(TINY)
    MODELS.build(cfg.model)  # as it is, it fits
    cfg.model.backbone.out_indices = (1, 2, 3)
    with pytest.raises(ValueError, match=re.escape(
            'the ViTAdapter backbone does not fit the neck: model.backbone.out_indices=(1, 2, 3) '
            'gives 3 maps but model.neck.in_channels=[64, 64, 64, 64] lists 4 inputs')):
        MODELS.build(cfg.model) if build == 'MODELS.build' else init_detector(cfg, device='cpu')
