"""Limits on what one training image may ask of memory (pixels, objects), and annotations the
dataset drops (of no image, of a category outside the config's classes): refused or counted before
training, by the dataset and by ``tools/misc/check_dataset.py`` alike."""
import io
import logging
import struct
import zlib

import pytest
from mmengine.logging import MMLogger

from mmdet_dinov2.datasets import DatasetCheckError
from mmdet_dinov2.datasets.limits import MAX_OBJECTS, MAX_PIXELS
from tests.coco_data import rect_ann
from tests.datasets.helpers import check_tool, two_images, write
from tests.helpers import tiny_config

pytestmark = pytest.mark.usefixtures('plain_config_text')


def build(root, **options):
    """The tiny config's train dataset on ``root`` with dotted ``options`` of that dataset."""
    from mmdet.registry import DATASETS
    cfg = tiny_config(root, root / 'work', **{f'train_dataloader.dataset.{key}': value
                                             for key, value in options.items()})
    return DATASETS.build(cfg.train_dataloader.dataset)


def declared_png(path, width, height):
    """A PNG of a few hundred bytes whose header declares ``width`` x ``height`` gray pixels
    (its data: the first rows only, as a file cut short)."""
    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data)))
    rows = zlib.compress(b'\0' * (width + 1) * 4)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height,
                                                                        8, 0, 0, 0, 0))
                     + chunk(b'IDAT', rows) + chunk(b'IEND', b''))


def test_the_default_limits():
    from mmdet_dinov2.datasets import CheckedCocoDataset
    assert (MAX_PIXELS, MAX_OBJECTS) == (100_000_000, 2000)
    import inspect
    parameters = inspect.signature(CheckedCocoDataset.__init__).parameters
    assert parameters['max_pixels'].default == MAX_PIXELS
    assert parameters['max_objects'].default == MAX_OBJECTS


@pytest.mark.parametrize('side', [12000, 20000])
def test_an_image_declaring_too_many_pixels_is_refused_without_decoding(tmp_path, capsys, side):
    entries = two_images()
    entries[1].update(image=False, size=(side, side), anns=[rect_ann(2, 2, [30, 30, 20, 20])])
    write(tmp_path, entries)
    declared_png(tmp_path / 'train' / 'b.png', side, side)
    assert (tmp_path / 'train' / 'b.png').stat().st_size < 1000
    expected = (f"image 2: over max_pixels: {tmp_path / 'train' / 'b.png'}: {side}x{side} = "
                f'{side * side:,} pixels, over the limit of 100,000,000; decoding it would take '
                f'{side * side * 3 / 2**30:.1f} GiB. Resize the image, or raise the limit with '
                'train_dataloader.dataset.max_pixels=N in the config or in --cfg-options (None: '
                'no limit)')
    with pytest.raises(DatasetCheckError) as error:
        build(tmp_path)
    assert expected in str(error.value)
    assert str(tmp_path / 'annotations' / 'instances_train.json') in str(error.value)
    for options in ((), ('--decode',)):
        status, listed = check_tool(tmp_path, capsys, *options)
        assert status == 1 and expected in listed, listed
    if side == 12000:  # raised on the command line, the image is taken
        status, listed = check_tool(tmp_path, capsys, '--cfg-options',
                                    'train_dataloader.dataset.max_pixels=150000000')
        assert status == 0 and '2 images usable' in listed, listed
    else:  # beyond PIL's own limit (2 * PIL.Image.MAX_IMAGE_PIXELS), its header reader refuses
        with pytest.raises(DatasetCheckError, match='b.png: Image size .400000000 pixels. exceeds '
                                                    'limit of 178956970 pixels'):
            build(tmp_path, max_pixels=None)
    assert len(build(tmp_path, max_pixels=None, verify_image_size=False)) == 2


def test_the_pixel_limit_is_exact(tmp_path):
    write(tmp_path, two_images())  # 64 x 64 = 4096 pixels each
    assert len(build(tmp_path, max_pixels=4096)) == 2
    with pytest.raises(DatasetCheckError, match=r'image 1: over max_pixels: .*a\.png: 64x64 = '
                                                r'4,096 pixels, over the limit of 4,095;'):
        build(tmp_path, max_pixels=4095)


def test_an_image_with_more_objects_than_the_limit_is_refused(tmp_path, capsys):
    entries = two_images()
    entries[1]['anns'] = [rect_ann(100 + i, 1 + i % 4, [i % 40, i % 40, 8, 8])
                          for i in range(MAX_OBJECTS + 1)]
    write(tmp_path, entries)
    expected = (f"image 2: over max_objects: {tmp_path / 'train' / 'b.png'}: 2,001 annotations of "
                'the classes, over the limit of 2,000; training memory grows with them. Split the '
                'image, or raise the limit with train_dataloader.dataset.max_objects=N')
    with pytest.raises(DatasetCheckError) as error:
        build(tmp_path)
    assert expected in str(error.value)
    status, listed = check_tool(tmp_path, capsys)
    assert status == 1 and expected in listed, listed
    status, listed = check_tool(tmp_path, capsys, '--cfg-options',
                                'train_dataloader.dataset.max_objects=2001')
    assert status == 0, listed
    dataset = build(tmp_path, max_objects=2001)
    assert [len(dataset[i]['data_samples'].gt_instances) for i in range(2)] == [1, 2001]


def test_annotations_of_no_image_and_of_other_classes_are_counted(tmp_path, capsys):
    def add_strays(dataset):
        dataset['annotations'] += [dict(rect_ann(90 + i, 1, [8, 8, 20, 20]), image_id=7)
                                   for i in range(3)]
        dataset['annotations'].append(dict(rect_ann(99, 4, [8, 8, 20, 20]), image_id=1))
    write(tmp_path, two_images(), add_strays)
    status, listed = check_tool(tmp_path, capsys)
    assert status == 0, listed
    assert ("image 7: annotation of no image: 3 annotation(s) (ids [90, 91, 92]) name image_id 7; "
            'dropped: its image_id is not among the json "images"') in listed
    assert '2 images usable, 3 annotation(s) fixed or dropped' in listed
    # the config trains two of the json's four classes: the others' annotations are counted
    logger, log = MMLogger.get_current_instance(), io.StringIO()
    handler = logging.StreamHandler(log)
    logger.addHandler(handler)
    try:
        dataset = build(tmp_path, metainfo=dict(classes=('circle', 'triangle')))
    finally:
        logger.removeHandler(handler)
    kinds = {p.kind: (p.count, p.detail) for p in dataset.problems}
    assert kinds == {
        'annotation of no image': (3, '3 annotation(s) (ids [90, 91, 92]) name image_id 7'),
        'category not in classes': (1, "1 annotation(s) of category 4 'star'")}
    assert [len(dataset[i]['data_samples'].gt_instances) for i in range(2)] == [1, 1]
    assert 'fixed or dropped 4 annotation(s)' in log.getvalue()
    assert 'drop 1 x category not in classes' in log.getvalue()
