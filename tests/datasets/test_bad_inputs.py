"""Odd images and bad annotations through the user's path (config -> runner): trained and tested
where they can be fixed, else a clear error listing every problem with its image and annotation."""

import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from mmdet_dinov2.datasets import DatasetCheckError
from tests.coco_data import rect_ann, write_split
from tests.helpers import REPO, build_runner, load_tool, tiny_config, train

pytestmark = pytest.mark.usefixtures('plain_config_text', 'one_thread')


def odd_images():
    """Images of every awkward kind, each with one box, plus one without annotations."""
    gray = Image.fromarray(np.full((64, 64), 90, np.uint8))
    rgba = Image.fromarray(np.full((64, 64, 4), 90, np.uint8))
    deep = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    upright = Image.fromarray(np.full((48, 64, 3), 90, np.uint8))  # 64 wide, 48 high
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; viewers (and mmcv) turn it 90 degrees clockwise
    box = [8, 8, 20, 16]
    return [
        dict(name='gray.png', size=(64, 64), image=gray, anns=[box]),
        dict(name='rgba.png', size=(64, 64), image=rgba, anns=[box]),
        dict(name='deep.png', size=(64, 64), image=deep, anns=[box]),
        dict(
            name='exif.jpg',
            size=(64, 48),
            image=upright.transpose(Image.ROTATE_90),
            exif=exif.tobytes(),
            anns=[box],
        ),
        dict(name='tiny.png', size=(32, 32), anns=[[4, 4, 20, 20]]),
        dict(name='wide.png', size=(4000, 300), anns=[[100, 50, 400, 200], [3000, 20, 900, 260]]),
        dict(name='negative.png', size=(64, 64), anns=[]),
    ]


def fixable_images():
    """Annotations mmdet would mishandle silently, each of which can be fixed or dropped."""
    return [
        dict(
            name='fixable.png',
            size=(64, 64),
            anns=[
                [10, 10, 0, 12],  # zero width: dropped
                [50, 40, 30, 10],  # reaches outside the image: clipped to [50, 40, 14, 10]
                [70, 70, 10, 10],  # wholly outside: dropped
                [5, 5, 20, 20],  # fine
            ],
            polygons={3: [[5, 5, 25, 5]]},
        ),  # only a 2-point polygon: dropped
        dict(
            name='partly.png',
            size=(64, 64),
            anns=[[10, 10, 20, 20]],
            polygons={0: [[10, 10, 30, 10, 30, 30, 10, 30], [1, 1, 2, 2]]},
        ),
    ]  # a part dropped


def to_entries(images, first_id=1):
    entries, ann_id = [], first_id
    for image in images:
        anns = []
        for i, box in enumerate(image['anns']):
            ann = rect_ann(ann_id, 1 + i % 2, box)
            if i in image.get('polygons', {}):
                ann['segmentation'] = image['polygons'][i]
            anns.append(ann)
            ann_id += 1
        entries.append(dict(image, anns=anns))
    return entries


@pytest.fixture(scope='module')
def odd_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('odd')
    entries = to_entries(odd_images() + fixable_images())
    write_split(root, 'train', entries)
    write_split(root, 'val', entries[: len(odd_images())])
    return root


def test_odd_images_and_fixable_annotations_train_and_test(odd_data, tmp_path):
    """With the real S config's pipelines: multi-scale training (4000x300 -> about 1333x100,
    32x32 -> 480..800 square) and mmdet's 1333x800 test resize."""
    from mmengine.config import Config

    real = Config.fromfile(
        str(REPO / 'configs/vit_adapter/mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py')
    )
    cfg = tiny_config(
        odd_data,
        tmp_path / 'work',
        **{
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 1,
            'train_dataloader.dataset.pipeline': real.train_pipeline,
            'val_dataloader.dataset.pipeline': real.test_pipeline,
        },
    )
    runner, log = train(cfg)
    dataset = runner.train_dataloader.dataset
    assert len(dataset) == 9  # every image kept, the one without annotations as a negative
    found = {(p.action, p.kind, p.ann_id) for p in dataset.problems}
    assert found == {
        ('drop', 'degenerate box', 8),
        ('fix', 'box outside image', 9),
        ('drop', 'degenerate box', 10),
        ('drop', 'bad polygon', 11),
        ('fix', 'bad polygon', 12),
    }
    infos = {
        info['img_path'].rsplit('/', 1)[1]: info
        for info in map(dataset.get_data_info, range(len(dataset)))
    }
    assert [i['bbox'] for i in infos['fixable.png']['instances']] == [[50, 40, 64, 50]]
    assert len(infos['partly.png']['instances'][0]['mask']) == 1
    assert 'fixed or dropped 5 annotation(s)' in log and 'kept as negatives' in log
    losses = [
        json.loads(line)['loss']
        for line in open(f'{runner.log_dir}/vis_data/scalars.json')
        if '"loss"' in line
    ]
    assert len(losses) == 5 and all(map(math.isfinite, losses))
    assert 'coco/bbox_mAP' in log  # validation on the same images ran


def test_odd_images_at_native_size_at_test_time(odd_data, tmp_path):
    native = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale_factor=1.0),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(
            type='PackDetInputs',
            meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'),
        ),
    ]
    cfg = tiny_config(
        odd_data,
        tmp_path / 'work',
        **{'test_dataloader.dataset.pipeline': native, 'test_dataloader.batch_size': 1},
    )
    metrics = build_runner(cfg).test()
    assert 'coco/bbox_mAP' in metrics and 'coco/segm_mAP' in metrics


def test_val_annotations_that_coco_evaluation_fails_on_are_refused(odd_data, tmp_path):
    from mmdet.registry import DATASETS

    cfg = tiny_config(
        odd_data,
        tmp_path,
        **{
            'val_dataloader.dataset.ann_file': 'annotations/instances_train.json',
            'val_dataloader.dataset.data_prefix.img': 'train/',
        },
    )
    with pytest.raises(DatasetCheckError) as info:
        DATASETS.build(cfg.val_dataloader.dataset)
    message = str(info.value)
    assert '2 problem(s) that cannot be fixed' in message
    assert 'image 8, annotation 11: bad polygon: no part with 3 points' in message
    assert 'image 9, annotation 12: bad polygon: 1 of 2 parts' in message
    assert 'the COCO evaluator reads this file as it is' in message


def test_unfixable_dataset_problems_are_all_listed(tmp_path, capsys):
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = Image.fromarray(np.full((48, 64, 3), 90, np.uint8))
    bad_rle = {'size': [10, 10], 'counts': 'abc'}
    entries = [
        dict(name='ok.png', size=(64, 64), anns=[rect_ann(1, 7, [1, 1, 9, 9])]),
        dict(name='gone.png', size=(64, 64), image=False, anns=[]),
        dict(name='small.png', size=(64, 64), json_size=(80, 64), anns=[]),
        dict(name='turned.jpg', size=(64, 48), image=stored, exif=exif.tobytes(), anns=[]),
        dict(
            name='rle.png',
            size=(64, 64),
            anns=[dict(rect_ann(2, 1, [1, 1, 9, 9]), segmentation=bad_rle)],
        ),
        dict(
            name='box.png',
            size=(64, 64),
            anns=[dict(rect_ann(3, 1, [1, 1, 9, 9]), bbox=[1, 'x', 3])],
        ),
        dict(
            name='nosize.png',
            size=(64, 64),
            json_size=(None, 64),
            anns=[rect_ann(4, 1, [1, 1, 9, 9])],
        ),
    ]
    write_split(tmp_path, 'train', entries)
    write_split(tmp_path, 'val', entries[:1])
    with pytest.raises(DatasetCheckError) as info:
        train(tiny_config(tmp_path, tmp_path / 'work'))
    cfg = tiny_config(tmp_path, tmp_path / 'work')
    cfg.dump(str(tmp_path / 'cfg.py'))
    assert load_tool('tools/misc/check_dataset.py').main([str(tmp_path / 'cfg.py')]) == 1
    listed = capsys.readouterr().out
    assert 'train: REFUSED' in listed and 'val: REFUSED' in listed  # val has image 1 too
    message = str(info.value)
    ann_file = tmp_path / 'annotations' / 'instances_train.json'
    assert f'{ann_file}: 7 problem(s) that cannot be fixed' in message
    for expected in [
        'image 1, annotation 1: unknown category: category_id 7 (the json has [1, 2, 3, 4])',
        f'image 2: missing image: {tmp_path}/train/gone.png does not exist',
        'image 3: size mismatch: ',
        'the json says 80x64',
        f'image 4: size mismatch: {tmp_path}/train/turned.jpg is 48x64 upright, the json '
        'says 64x48',
        'tools/misc/check_dataset.py CONFIG tells whether an EXIF orientation',
        "image 5, annotation 2: rle size: size=[10, 10], image 64x64",
        "image 6, annotation 3: bad box: bbox=[1, 'x', 3]",
        "image 7: bad image entry: file_name='nosize.png' width=None height=64",
    ]:
        assert expected in message and expected in listed
    # the tool diagnoses what training only names
    assert (
        f'image 4: exif rotation: {tmp_path}/train/turned.jpg is stored 64x48 as the json '
        'says, but its EXIF orientation 6 turns it 48x64 upright'
    ) in listed
    assert "LoadImageFromFile(color_type='color_ignore_orientation')" in listed
    assert 'exif rotation' not in message


@pytest.mark.parametrize(
    'classes, expected',
    [
        (
            ('circle', 'square'),
            "classes ['square'] are not among the json categories ['circle', "
            "'triangle', 'rectangle', 'star']",
        ),
        (
            ('triangle', 'circle'),
            "config classes ['triangle', 'circle'] vs json order ['circle', 'triangle']",
        ),
    ],
    ids=['unknown_class', 'class_order'],
)
def test_classes_that_do_not_match_the_json(tiny_data, tmp_path, classes, expected):
    from mmdet.registry import DATASETS

    cfg = tiny_config(tiny_data, tmp_path, **{'train_dataloader.dataset.metainfo.classes': classes})
    with pytest.raises(DatasetCheckError, match=re.escape(expected)):
        DATASETS.build(cfg.train_dataloader.dataset)


def test_empty_val_set_is_refused_before_training(tiny_data, tmp_path):
    write_split(tmp_path, 'val', [])
    cfg = tiny_config(
        tiny_data,
        tmp_path / 'work',
        **{
            'val_dataloader.dataset.data_root': str(tmp_path) + '/',
            'val_evaluator.ann_file': str(tmp_path / 'annotations' / 'instances_val.json'),
        },
    )
    with pytest.raises(DatasetCheckError) as info:
        train(cfg)
    assert f'{tmp_path}/annotations/instances_val.json gives no images' in str(info.value)
    assert 'val_cfg=None' in str(info.value)
    assert not (tmp_path / 'work' / 'epoch_1.pth').exists()
