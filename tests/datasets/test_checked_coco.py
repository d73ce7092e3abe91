"""CheckedCocoDataset: annotation files that would give silently wrong results or bare errors are
refused before training, by the dataset and by ``tools/misc/check_dataset.py`` alike, naming the
file, the image/annotation id, the value and what to do."""
import re

import numpy as np
import pytest
from PIL import Image

from mmdet_dinov2.datasets import DatasetCheckError
from tests.coco_data import rect_ann
from tests.datasets.helpers import build, check_tool, two_images, write

pytestmark = pytest.mark.usefixtures('plain_config_text')

NAN, INF = float('nan'), float('inf')


def refused(root, capsys, *expected):
    """Assert that the dataset and the check tool both refuse the train split, with every string
    of ``expected`` in their messages; return the dataset's message."""
    with pytest.raises(DatasetCheckError) as info:
        build(root)
    message = str(info.value)
    status, listed = check_tool(root, capsys)
    assert status == 1 and 'train: REFUSED' in listed
    for text in expected:
        assert text in message, message
        assert text in listed, listed
    return message


# ------------------------------------------------------------------ 1. ids used twice
@pytest.mark.parametrize('same, expected', [
    ({'images': 'id', 'annotations': 'image_id'},
     ["image 1: duplicate image id: 2 images have id 1: file names 'a.png', 'b.png'; "
      'give every image its own id']),
    ({'annotations': 'id', 'categories': 'id'},
     ['image 1, annotation 1: duplicate annotation id: 2 annotations have id 1, on images [1, 2]',
      'file: duplicate category id: 2 categories have id 1']),
], ids=['image ids, naming both files', 'annotation and category ids'])
def test_duplicate_ids_are_refused(tmp_path, capsys, same, expected):
    def set_second_to_1(dataset):  # the second entry of each list takes the first one's id
        for section, key in same.items():
            dataset[section][1][key] = 1
    write(tmp_path, two_images(), set_second_to_1)
    refused(tmp_path, capsys, *expected)


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
def test_polygons_that_cannot_be_rasterised_safely_are_refused(tmp_path, capsys, polygon,
                                                               expected):
    write(tmp_path, two_images(segmentation=[SQUARE, polygon]))
    advice = ('as far as its box does (at most one image size), and 4 pixels or 2% of the side'
              if 'outside' in expected
              else 'finite numbers (a NaN or inf makes mask rasterisation allocate memory')
    refused(tmp_path, capsys, f'image 1, annotation 1: {expected}', advice)


def test_polygon_vertices_within_the_margin_are_accepted(tmp_path):
    """4 pixels (or 2% of the side) outside the image: rasterisation clips them."""
    write(tmp_path, two_images(segmentation=[[-4, -3.5, 68, 0, 68, 68]]))
    write(tmp_path / 'wide', [dict(name='wide.png', size=(1000, 64), anns=[
        dict(rect_ann(1, 1, [8, 8, 20, 20]), segmentation=[[-20, 8, 1020, 8, 1020, 30]])])])
    assert build(tmp_path).problems == []
    assert build(tmp_path / 'wide').problems == []


def test_polygon_of_an_object_cut_by_the_border_may_reach_as_far_as_its_box(tmp_path,
                                                                           capsys):
    """The box is clipped (a counted fix) and rasterisation clips the polygon; the box counts at
    most one image size beyond the border."""
    write(tmp_path, two_images(bbox=[40, 8, 60, 20],
                                  segmentation=[[40, 8, 100, 8, 100, 28, 40, 28]]))
    problems = build(tmp_path).problems
    assert [(p.action, p.kind, p.ann_id) for p in problems] == [('fix', 'box outside image', 1)]
    write(tmp_path, two_images(bbox=[40, 8, 1e6, 20],
                                  segmentation=[[40, 8, 1e6, 8, 1e6, 28, 40, 28]]))
    refused(tmp_path, capsys, 'image 1, annotation 1: polygon outside image: part 0 spans x '
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
    ({'size': [64, 64], 'counts': 'PP0'},
     "bad rle: the runs of counts 'PP0'... cover fewer pixels than the image 64x64 = 4096"),
    ({'size': [64, 64], 'counts': ''}, "bad rle: the runs of counts ''... cover fewer pixels"),
    ({'size': [64, 64], 'counts': 'O'}, "bad rle: the runs of counts 'O'... cover more pixels"),
    ({'size': [64, 64], 'counts': '0\x7f'},
     "bad rle: counts '0\\x7f'...: character '\\x7f' is not in the compressed RLE alphabet"),
    ({'size': [64, 64], 'counts': '0a'},
     "bad rle: counts '0a'...: the string ends in the middle of a run"),
    ({'size': [64, 64], 'counts': None}, 'bad rle: counts=null, not a list or a string'),
    ({'size': 64, 'counts': [4096]}, 'rle size: size=64, image 64x64'),
], ids=['short_list', 'negative_run', 'float_run', 'short_string', 'empty_string',
        'negative_string_run', 'bad_character', 'cut_string', 'no_counts', 'size_not_a_list'])
def test_rle_masks_that_do_not_cover_their_image_are_refused(tmp_path, capsys, rle, expected):
    write(tmp_path, two_images(segmentation=rle, iscrowd=1))
    refused(tmp_path, capsys, f'image 1, annotation 1: {expected}')


@pytest.mark.parametrize('columns, fault', [(32, 'fewer'), (128, 'more')])
def test_compressed_rle_of_another_size_is_refused(tmp_path, capsys, columns, fault):
    runs_of = compressed(np.tile(square_mask(), 2)[:, :columns])  # the runs of a 64xcolumns mask
    write(tmp_path, two_images(segmentation=dict(runs_of, size=[64, 64]), iscrowd=1))
    refused(tmp_path, capsys, f"image 1, annotation 1: bad rle: the runs of counts "
            f"{runs_of['counts'][:40]!r}... cover {fault} pixels than the image 64x64 = 4096")


def test_well_formed_rle_masks_are_accepted(tmp_path):
    from pycocotools import mask as mask_util
    mask = square_mask()
    runs = [520] + [20, 44] * 19 + [20, 2340]  # column-major runs of the square
    assert np.array_equal(mask_util.decode(mask_util.frPyObjects(
        {'size': [64, 64], 'counts': runs}, 64, 64)), mask)
    crowd = dict(rect_ann(3, 1, [8, 8, 20, 20]), iscrowd=1,
                 segmentation={'size': [64, 64], 'counts': runs})
    entries = two_images(segmentation=compressed(mask))
    entries[1]['anns'].append(crowd)
    write(tmp_path, entries)
    assert build(tmp_path).problems == []


def test_compressed_rle_must_cover_its_image_exactly():
    """pycocotools' encoding of random runs (long runs, runs that shrink: negative differences in
    the string) passes on its own size and is refused one pixel off either way."""
    from pycocotools import mask as mask_util

    from mmdet_dinov2.datasets.checked_coco import _rle_problem
    rng = np.random.default_rng(0)
    for _ in range(20):
        runs = rng.integers(1, 5000, rng.integers(2, 40)).tolist()
        total = sum(runs)
        counts = mask_util.frPyObjects({'size': [1, total], 'counts': runs}, 1, total)['counts']
        assert _rle_problem({'size': [1, total], 'counts': counts.decode()}, total, 1) is None
        for width, fault in ((total - 1, 'more'), (total + 1, 'fewer')):
            kind, detail = _rle_problem({'size': [1, width], 'counts': counts.decode()}, width, 1)
            assert kind == 'bad rle' and f'cover {fault} pixels' in detail, detail


@pytest.mark.parametrize('box', [[NAN, 8, 20, 20], [8, 8, INF, 20], [8, 8, True, 20]],
                         ids=['nan', 'inf', 'bool'])
def test_boxes_with_non_finite_or_boolean_values_are_refused(tmp_path, capsys, box):
    entries = two_images(bbox=box)
    entries[0]['image'] = Image.new('RGB', (64, 64))  # not drawn from the box
    write(tmp_path, entries)
    refused(tmp_path, capsys, 'image 1, annotation 1: bad box: bbox=')


# ------------------------------------------------------------------ 3. the json itself
def test_unparsable_json_names_the_file_line_and_column(tmp_path):
    """Training names the JSON error; the check tool says whether the file was cut short."""
    path = write(tmp_path, two_images())
    text = path.read_text()
    path.write_text(text[:len(text) // 2])
    with pytest.raises(DatasetCheckError, match=re.escape(f'cannot parse {path}: ')) as info:
        build(tmp_path)
    assert re.search(r': line 1 column \d+ \(char \d+\)\. A COCO annotation file is one JSON',
                     str(info.value))
    assert 'tools/misc/check_dataset.py says whether it was cut short' in str(info.value)


def test_json_that_is_not_an_object_is_refused(tmp_path, capsys):
    path = write(tmp_path, two_images())
    path.write_text('[]')
    refused(tmp_path, capsys, f'{path}: holds a JSON list')


# ------------------------------------------------------------------ 4. ids that are not integers
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
def test_ids_that_are_not_json_integers_are_refused(tmp_path, capsys, edit, expected):
    write(tmp_path, two_images(), edit)
    message = refused(tmp_path, capsys, expected)
    assert 'must be JSON integers: not true/false, strings or numbers with a decimal' in message
