"""Annotation files and images that used to give silently wrong results or bare errors: each is
refused before training, by the dataset and by ``tools/misc/check_dataset.py`` alike, naming the
file, the image/annotation id, the value and what to do."""
import json
import re

import numpy as np
import pytest
from PIL import Image

from mmdet_dinov2.datasets import DatasetCheckError

NAN, INF = float('nan'), float('inf')


def write(h, root, entries, edit=None):
    """The train split of ``entries`` (val: its first image); ``edit(dataset)`` changes the
    train json's content before it is written back. Returns the train json's path."""
    h.write_split(root, 'train', entries)
    h.write_split(root, 'val', entries[:1])
    path = root / 'annotations' / 'instances_train.json'
    if edit is not None:
        dataset = json.loads(path.read_text())
        edit(dataset)
        path.write_text(json.dumps(dataset))
    return path


def build(h, root):
    from mmdet.registry import DATASETS
    return DATASETS.build(h.tiny_config(root, root / 'work').train_dataloader.dataset)


def check_tool(h, root, capsys, *options):
    """``tools/misc/check_dataset.py`` on the train split: (exit status, what it printed)."""
    cfg = h.tiny_config(root, root / 'work')
    cfg.dump(str(root / 'cfg.py'))
    status = h.load_tool('tools/misc/check_dataset.py').main(
        [str(root / 'cfg.py'), '--splits', 'train', *options])
    return status, capsys.readouterr().out


def refused(h, root, capsys, *expected):
    """Assert that the dataset and the check tool both refuse the train split, with every string
    of ``expected`` in their messages; return the dataset's message."""
    with pytest.raises(DatasetCheckError) as info:
        build(h, root)
    message = str(info.value)
    status, listed = check_tool(h, root, capsys)
    assert status == 1 and 'train: REFUSED' in listed
    for text in expected:
        assert text in message, message
        assert text in listed, listed
    return message


def two_images(h, segmentation=None, **ann):
    """Two 64x64 images with one box annotation each (ids 1 and 2 on images 1 and 2)."""
    first = dict(h.rect_ann(1, 1, [8, 8, 20, 20]), **ann)
    if segmentation is not None:
        first['segmentation'] = segmentation
    return [dict(name='a.png', size=(64, 64), anns=[first]),
            dict(name='b.png', size=(64, 64), anns=[h.rect_ann(2, 2, [30, 30, 20, 20])])]


# ------------------------------------------------------------------ 1. ids used twice
def test_duplicate_image_ids_are_refused_naming_both_files(h, tmp_path, capsys):
    def same_id(dataset):
        dataset['images'][1]['id'] = 1
        dataset['annotations'][1]['image_id'] = 1
    write(h, tmp_path, two_images(h), same_id)
    refused(h, tmp_path, capsys,
            "image 1: duplicate image id: 2 images have id 1: file names 'a.png', 'b.png'; "
            'give every image its own id')


def test_duplicate_annotation_and_category_ids_are_refused(h, tmp_path, capsys):
    def same_ids(dataset):
        dataset['annotations'][1]['id'] = 1
        dataset['categories'][1]['id'] = 1
    write(h, tmp_path, two_images(h), same_ids)
    refused(h, tmp_path, capsys,
            'image 1, annotation 1: duplicate annotation id: 2 annotations have id 1, on images '
            '[1, 2]', 'file: duplicate category id: 2 categories have id 1')


# ------------------------------------------------------------------ 2. segmentations
SQUARE = [8, 8, 28, 8, 28, 28, 8, 28]


@pytest.mark.parametrize('polygon, expected', [
    ([NAN, 8, 28, 8, 28, 28, 8, 28], 'bad polygon coordinates: part 1 holds nan'),
    ([8, 8, 28, 8, 28, INF, 8, 28], 'bad polygon coordinates: part 1 holds inf'),
    ([8, 8, 28, 8, 28, None, 8, 28], 'bad polygon coordinates: part 1 holds null'),
    ([8, 8, 1e12, 8, 28, 28], 'polygon outside image: part 1 spans x 8..1e+12'),
    ([8, 8, 69, 8, 28, 28], 'polygon outside image: part 1 spans x 8..69, y 8..28; image 64x64, '
                            'bbox [8, 8, 20, 20] (allowed: x -4..68, y -4..68)'),
    ([8, -4.5, 28, 8, 28, 28], 'polygon outside image: part 1 spans x 8..28, y -4.5..28; image '
                               '64x64, bbox [8, 8, 20, 20] (allowed: x -4..68, y -4..68)'),
], ids=['nan', 'inf', 'null', 'far', 'just_beyond_right', 'just_beyond_top'])
def test_polygons_that_cannot_be_rasterised_safely_are_refused(h, tmp_path, capsys, polygon,
                                                               expected):
    write(h, tmp_path, two_images(h, segmentation=[SQUARE, polygon]))
    advice = ('as far as its box does (at most one image size), and 4 pixels or 2% of the side'
              if 'outside' in expected
              else 'finite numbers (a NaN or inf makes mask rasterisation allocate memory')
    refused(h, tmp_path, capsys, f'image 1, annotation 1: {expected}', advice)


def test_polygon_vertices_within_the_margin_are_accepted(h, tmp_path):
    """4 pixels (or 2% of the side) outside the image: rasterisation clips them."""
    write(h, tmp_path, two_images(h, segmentation=[[-4, -3.5, 68, 0, 68, 68]]))
    write(h, tmp_path / 'wide', [dict(name='wide.png', size=(1000, 64), anns=[
        dict(h.rect_ann(1, 1, [8, 8, 20, 20]), segmentation=[[-20, 8, 1020, 8, 1020, 30]])])])
    assert build(h, tmp_path).problems == []
    assert build(h, tmp_path / 'wide').problems == []


def test_polygon_of_an_object_cut_by_the_border_may_reach_as_far_as_its_box(h, tmp_path,
                                                                           capsys):
    """The box is clipped (a counted fix) and rasterisation clips the polygon; the box counts at
    most one image size beyond the border."""
    write(h, tmp_path, two_images(h, bbox=[40, 8, 60, 20],
                                  segmentation=[[40, 8, 100, 8, 100, 28, 40, 28]]))
    problems = build(h, tmp_path).problems
    assert [(p.action, p.kind, p.ann_id) for p in problems] == [('fix', 'box outside image', 1)]
    write(h, tmp_path, two_images(h, bbox=[40, 8, 1e6, 20],
                                  segmentation=[[40, 8, 1e6, 8, 1e6, 28, 40, 28]]))
    refused(h, tmp_path, capsys, 'image 1, annotation 1: polygon outside image: part 0 spans x '
            '40..1e+06, y 8..28; image 64x64, bbox [40, 8, 1000000.0, 20] (allowed: x -4..132')


def compressed(mask):
    from pycocotools import mask as mask_util
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return dict(size=rle['size'], counts=rle['counts'].decode())


def square_mask(size=64):
    mask = np.zeros((size, size), bool)
    mask[8:28, 8:28] = True
    return mask


@pytest.mark.parametrize('rle, expected', [
    ({'size': [64, 64], 'counts': [520, 20, 44, 20, 3000]},
     'bad rle: the runs cover 3604 pixels (shortest run 20), the image 64x64 = 4096'),
    ({'size': [64, 64], 'counts': [4000, -4, 100]},
     'bad rle: the runs cover 4096 pixels (shortest run -4)'),
    ({'size': [64, 64], 'counts': [4000, 96.0]}, 'bad rle: counts hold 96.0, not an integer'),
    ({'size': [64, 64], 'counts': 'PP0'}, 'bad rle: the runs cover'),
    ({'size': [64, 64], 'counts': '0\x7f'},
     "bad rle: counts '0\\x7f'...: character '\\x7f' is not in the compressed RLE alphabet"),
    ({'size': [64, 64], 'counts': '0a'},
     "bad rle: counts '0a'...: the string ends in the middle of a run"),
    ({'size': [64, 64], 'counts': None}, 'bad rle: counts=null, not a list or a string'),
    ({'size': 64, 'counts': [4096]}, 'rle size: size=64, image 64x64'),
], ids=['short_list', 'negative_run', 'float_run', 'short_string', 'bad_character',
        'cut_string', 'no_counts', 'size_not_a_list'])
def test_rle_masks_that_do_not_cover_their_image_are_refused(h, tmp_path, capsys, rle, expected):
    write(h, tmp_path, two_images(h, segmentation=rle, iscrowd=1))
    refused(h, tmp_path, capsys, f'image 1, annotation 1: {expected}')


def test_compressed_rle_of_another_size_is_refused(h, tmp_path, capsys):
    rle = dict(compressed(square_mask()[:, :32]), size=[64, 64])  # the runs of a 64x32 mask
    write(h, tmp_path, two_images(h, segmentation=rle, iscrowd=1))
    refused(h, tmp_path, capsys, 'image 1, annotation 1: bad rle: the runs cover 2048 pixels '
            '(shortest run 20), the image 64x64 = 4096')


def test_well_formed_rle_masks_are_accepted(h, tmp_path):
    from pycocotools import mask as mask_util
    mask = square_mask()
    runs = [520] + [20, 44] * 19 + [20, 2340]  # column-major runs of the square
    assert np.array_equal(mask_util.decode(mask_util.frPyObjects(
        {'size': [64, 64], 'counts': runs}, 64, 64)), mask)
    crowd = dict(h.rect_ann(3, 1, [8, 8, 20, 20]), iscrowd=1,
                 segmentation={'size': [64, 64], 'counts': runs})
    entries = two_images(h, segmentation=compressed(mask))
    entries[1]['anns'].append(crowd)
    write(h, tmp_path, entries)
    assert build(h, tmp_path).problems == []


def test_compressed_runs_are_read_as_pycocotools_reads_them():
    """The checker's own reading of compressed strings against pycocotools' encoder, on masks with
    long runs and runs that shrink (negative differences in the string)."""
    from pycocotools import mask as mask_util
    from mmdet_dinov2.datasets.coco_checks import _compressed_rle_runs
    rng = np.random.default_rng(0)
    for _ in range(20):
        runs = rng.integers(1, 5000, rng.integers(1, 40)).tolist()
        rle = mask_util.frPyObjects({'size': [1, sum(runs)], 'counts': runs}, 1, sum(runs))
        assert _compressed_rle_runs(rle['counts']) == runs


@pytest.mark.parametrize('box', [[NAN, 8, 20, 20], [8, 8, INF, 20], [8, 8, True, 20]],
                         ids=['nan', 'inf', 'bool'])
def test_boxes_with_non_finite_or_boolean_values_are_refused(h, tmp_path, capsys, box):
    entries = two_images(h, bbox=box)
    entries[0]['image'] = Image.new('RGB', (64, 64))  # not drawn from the box
    write(h, tmp_path, entries)
    refused(h, tmp_path, capsys, 'image 1, annotation 1: bad box: bbox=')


# ------------------------------------------------------------------ 3. the json itself
def test_truncated_json_names_the_file_line_and_column(h, tmp_path, capsys):
    path = write(h, tmp_path, two_images(h))
    text = path.read_text()
    path.write_text(text[:len(text) // 2])
    refused(h, tmp_path, capsys, f'{path}: truncated: the file ends ({len(text) // 2} bytes) in '
            'the middle of its JSON, at line 1, column ', 'fetch or write it again')
    path.write_text('')
    refused(h, tmp_path, capsys, f'{path}: truncated: the file is empty, at line 1, column 1')


def test_json_cut_anywhere_is_called_truncated(tmp_path):
    from mmdet_dinov2.datasets import load_annotation_file
    text = json.dumps({'images': [{'id': 1, 'x': -1.5e3, 'ok': True, 'no': None, 'a': NAN,
                                   'b': -INF, 's': 'a"b'}], 'annotations': []}, indent=1)
    path = tmp_path / 'cut.json'
    for end in range(len(text)):
        path.write_text(text[:end])
        with pytest.raises(DatasetCheckError, match=re.escape(f'{path}: truncated: the file ')):
            load_annotation_file(path)


def test_malformed_json_names_the_file_line_column_and_text(h, tmp_path, capsys):
    path = write(h, tmp_path, two_images(h))
    dataset = json.loads(path.read_text())
    path.write_text(json.dumps(dataset, indent=1).replace('"width": 64', '"width": 64,,', 1))
    refused(h, tmp_path, capsys, f'{path}: malformed JSON at line ', "Expecting property name",
            "near '")


def test_json_that_is_not_an_object_is_refused(h, tmp_path, capsys):
    path = write(h, tmp_path, two_images(h))
    path.write_text('[]')
    refused(h, tmp_path, capsys, f'{path}: holds a JSON list')


# ------------------------------------------------------------------ 4. images cut short
def image_file(tmp_path, name):
    return tmp_path / 'train' / name


@pytest.mark.parametrize('name', ['a.png', 'a.jpg'])
def test_truncated_images_are_refused_before_training(h, tmp_path, capsys, name):
    entries = two_images(h)
    entries[0]['name'] = name
    write(h, tmp_path, entries)
    path = image_file(tmp_path, name)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])
    with Image.open(path) as image:  # the header alone still reads
        assert image.size == (64, 64)
    kind = 'PNG' if name.endswith('png') else 'JPEG'
    refused(h, tmp_path, capsys, f'image 1: truncated image: {path} ({len(data) * 2 // 3} bytes) '
            f'has no {kind} end marker in its last 4096 bytes, and decoding it fails: ',
            'copy it again, or remove the image')


def test_images_with_bytes_after_their_end_are_accepted(h, tmp_path):
    """Padding after the end marker: found in the last 4 KiB, or decoded when it is longer."""
    entries = two_images(h)
    entries[1]['name'] = 'b.jpg'
    write(h, tmp_path, entries)
    for name, padding in [('a.png', 100), ('b.jpg', 10000)]:
        path = image_file(tmp_path, name)
        path.write_bytes(path.read_bytes() + b'\0' * padding)
    assert build(h, tmp_path).problems == []


def test_damage_inside_an_image_is_found_by_a_full_decode(h, tmp_path, capsys):
    """Same length, end marker intact: the header and end check cannot see it; --decode does."""
    write(h, tmp_path, two_images(h))
    path = image_file(tmp_path, 'a.png')
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(range(64))
    path.write_bytes(bytes(data))
    assert len(build(h, tmp_path)) == 2
    status, listed = check_tool(h, tmp_path, capsys, '--decode')
    assert status == 1, listed
    assert f'image 1: unreadable image: {path}: ' in listed


# ------------------------------------------------------------------ 5. ids that are not integers
@pytest.mark.parametrize('edit, expected', [
    (lambda d: d['annotations'][0].update(category_id=True),
     'image 1, annotation 1: bad id: annotation category_id is the JSON boolean true'),
    (lambda d: d['categories'][0].update(id=True),
     "file: bad id: category 'circle': id is the JSON boolean true"),
    (lambda d: (d['images'][0].update(id=True), d['annotations'][0].update(image_id=True)),
     "image True: bad id: image 'a.png': id is the JSON boolean true"),
    (lambda d: d['annotations'][0].update(id=False),
     'image 1, annotation False: bad id: annotation id is the JSON boolean false'),
    (lambda d: d['annotations'][1].update(image_id=2.0),
     'image 2.0, annotation 2: bad id: annotation image_id 2.0 is a number with a decimal point'),
    (lambda d: d['images'][1].update(id='2'),
     'image 2: bad id: image \'b.png\': id "2" is a JSON string'),
    (lambda d: d['annotations'][1].pop('id'),
     'image 2: bad id: annotation id is missing'),
], ids=['category_id_true', 'category_true', 'image_true', 'annotation_false', 'image_id_float',
        'image_string', 'annotation_without_id'])
def test_ids_that_are_not_json_integers_are_refused(h, tmp_path, capsys, edit, expected):
    write(h, tmp_path, two_images(h), edit)
    message = refused(h, tmp_path, capsys, expected)
    assert 'must be JSON integers: not true/false, strings or numbers with a decimal' in message
