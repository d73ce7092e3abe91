"""Check a config's datasets before training: list every problem of their annotation files.

    python tools/misc/check_dataset.py CONFIG [--splits train val test] [--decode]
        [--cfg-options K=V ...]

Each split's dataset is built as training builds it, as a
:class:`~mmdet_dinov2.datasets.CheckedCocoDataset` (a plain ``CocoDataset`` is checked as one), and
every finding is printed: what was fixed (boxes clipped), dropped (degenerate boxes, polygons of
fewer than three points) and refused (ids that are not integers or are used twice, missing images,
unknown category ids, sizes that disagree with the files, polygons with non-finite or far-outside
coordinates, RLE masks that do not cover their image, images over the dataset's ``max_pixels`` or
``max_objects``, ...), with image and annotation ids and what to do. On top of what training
checks, the files are read to their end: a JSON error says whether the file was cut short or is
malformed, and a PNG or JPEG file without its end marker is decoded and refused as cut short when
that fails; a file whose header declares more than ``max_pixels`` is refused without decoding it;
a size mismatch that the EXIF orientation explains is named as such.
``--decode`` decodes every image in full (finds damage inside files). Exit status 1 when a split
has problems that stop training.
"""

import argparse
import copy
import json
import os
import os.path as osp
import sys

from mmdet.registry import DATASETS
from mmengine.config import Config, DictAction
from mmengine.fileio import get_local_path
from mmengine.registry import init_default_scope
from PIL import Image

from mmdet_dinov2.datasets.checked_coco import (
    EXIF_ORIENTATION,
    LIMITS_ADVICE,
    TRANSPOSING_ORIENTATIONS,
    DatasetCheckError,
    Problem,
    format_problems,
    load_annotation_file,
)
from mmdet_dinov2.datasets.limits import pixels_over

SPLITS = ('train', 'val', 'test')

# An image's end marker, looked for in its last bytes: the type and CRC of the PNG IEND chunk,
# JPEG's end-of-image marker. Entropy-coded JPEG data never holds FF D9 (a data byte FF is
# followed by 00), so the marker in the tail means the file was written to its end.
END_MARKERS = {'PNG': b'IEND\xaeB`\x82', 'JPEG': b'\xff\xd9', 'MPO': b'\xff\xd9'}
TAIL_BYTES = 4096  # tolerates padding written after the marker
TRUNCATED_ADVICE = (
    'the file is cut short (an interrupted download or copy?): copy it again, or '
    'remove the image from the json'
)
_JSON_LITERALS = ('true', 'false', 'null', 'NaN', 'Infinity', '-Infinity')
_NUMBER_CHARACTERS = '0123456789+-.eE'
RAISE_MAX_PIXELS = '--cfg-options train_dataloader.dataset.max_pixels=N (or val_, test_)'
EXIF_ADVICE = (
    'the json follows the stored pixels but the loader turns the image upright by its '
    'EXIF orientation: re-save the file upright without the orientation tag, or load '
    "with LoadImageFromFile(color_type='color_ignore_orientation')"
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='check the annotation files and images of a config before training; exit '
        'status 1 when a split has problems that stop training'
    )
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--splits',
        nargs='+',
        choices=SPLITS,
        default=list(SPLITS),
        help='which dataloaders to check (default: all the config has)',
    )
    parser.add_argument(
        '--decode',
        action='store_true',
        help='decode every image in full (finds damage inside files; slower)',
    )
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config settings, KEY=VALUE'
    )
    return parser.parse_args(argv)


def check_json(path):
    """Read an annotation file; on a JSON error, raise a :class:`DatasetCheckError` that says
    where, and whether the file was cut short or is malformed. Returns the json's content."""
    try:
        return load_annotation_file(path)
    except DatasetCheckError as err:
        if not isinstance(err.__cause__, json.JSONDecodeError):
            raise
        cause = err.__cause__
    where = f'line {cause.lineno}, column {cause.colno}'
    if _cut_short(cause):
        size = os.path.getsize(path)
        what = 'is empty' if size == 0 else f'ends ({size} bytes) in the middle of its JSON'
        raise DatasetCheckError(
            f'{path}: truncated: the file {what}, at {where} ({cause.msg}). It was cut short (an '
            'interrupted download, copy or write?): fetch or write it again'
        ) from None
    near = cause.doc[max(0, cause.pos - 30) : cause.pos + 30]
    raise DatasetCheckError(
        f'{path}: malformed JSON at {where}: {cause.msg}, near {near!r}. Fix '
        'the file: a COCO annotation file is one JSON object'
    ) from None


def _cut_short(err):
    """Whether a JSON error comes from text that stops in the middle of a value: a string running
    to the end (the scanner says "Unterminated string" only then), or nothing after the error but
    white space, the start of a literal or the rest of a number."""
    rest = err.doc[err.pos :].strip()
    return (
        err.msg.startswith('Unterminated string')
        or not rest
        or any(literal.startswith(rest) for literal in _JSON_LITERALS)
        or not rest.strip(_NUMBER_CHARACTERS)
    )


def check_image_file(img, path, decode=False, max_pixels=None):
    """Whether the image file of the json's entry ``img`` that opens is whole: a PNG or JPEG file
    needs its end marker in its last :data:`TAIL_BYTES` (else it is decoded, and refused as cut
    short when that fails); ``decode`` decodes every file in full. A file whose header declares
    more than ``max_pixels`` is refused without decoding it; one stored at the json's size that
    its EXIF orientation turns is named. Files that do not open are left to
    :func:`~mmdet_dinov2.datasets.checked_coco.check_image` (training refuses them itself).

    Returns:
        list[Problem]
    """
    img_id = img.get('id')
    with open(path, 'rb') as f:
        try:
            image = Image.open(f)
        except Image.DecompressionBombError as err:  # PIL's own limit, above MAX_PIXELS
            return _refused('over max_pixels', f'{path}: {err}', img_id, LIMITS_ADVICE)
        except (OSError, SyntaxError, ValueError):
            return []
        with image:
            over = pixels_over(path, *image.size, max_pixels, how_to_raise=RAISE_MAX_PIXELS)
            if over:
                return _refused('over max_pixels', over, img_id, LIMITS_ADVICE)
            orientation = image.getexif().get(EXIF_ORIENTATION, 1) if 'exif' in image.info else 1
            (width, height), stated = image.size, (img.get('width'), img.get('height'))
            if (
                orientation in TRANSPOSING_ORIENTATIONS
                and width != height
                and stated == (width, height)
            ):
                detail = (
                    f'{path} is stored {width}x{height} as the json says, but its EXIF '
                    f'orientation {orientation} turns it {height}x{width} upright'
                )
                return _refused('exif rotation', detail, img_id, EXIF_ADVICE)
            marker = END_MARKERS.get(image.format)
            ended = marker is None or marker in _tail(f)
            if ended and not decode:
                return []
            try:
                image.load()
            except (OSError, SyntaxError, ValueError) as err:
                if ended:
                    return _refused('unreadable image', f'{path}: {err}', img_id)
                detail = (
                    f'{path} ({osp.getsize(path)} bytes) has no {image.format} end marker in its '
                    f'last {TAIL_BYTES} bytes, and decoding it fails: {err}'
                )
                return _refused('truncated image', detail, img_id, TRUNCATED_ADVICE)
    return []


def _refused(kind, detail, img_id, advice=None):
    return [Problem('refuse', kind, detail, img_id, advice=advice)]


def _tail(f):
    """The last :data:`TAIL_BYTES` of the open file ``f``; its position kept."""
    position = f.tell()
    f.seek(max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES))
    tail = f.read()
    f.seek(position)
    return tail


def check_files(dataset, decode=False):
    """What training does not read of ``dataset`` (a lazily built CheckedCocoDataset): its JSON
    parsed with a diagnosis of errors (raises :class:`DatasetCheckError`), and every image file
    that exists to its end. Returns the images' problems."""
    with get_local_path(dataset.ann_file, backend_args=dataset.backend_args) as local_path:
        content = check_json(local_path)
    if dataset.backend_args:  # remote storage: a request per image
        print(f'{dataset.ann_file}: images on remote storage, their files not read')
        return []
    images = content.get('images')  # what is not a list of objects, training refuses itself
    problems = []
    for img in images if isinstance(images, list) else []:
        if isinstance(img, dict) and isinstance(img.get('file_name'), str):
            path = osp.join(dataset.data_prefix.get('img', ''), img['file_name'])
            if osp.isfile(path):
                problems += check_image_file(img, path, decode, dataset.max_pixels)
    return problems


def check_split(cfg, split, decode=False):
    """Build ``split``'s dataset with every problem listed; print them; True when it can train."""
    dataset_cfg = copy.deepcopy(cfg[f'{split}_dataloader']['dataset'])
    if dataset_cfg['type'] == 'CocoDataset':
        dataset_cfg['type'] = 'CheckedCocoDataset'
    if dataset_cfg['type'] != 'CheckedCocoDataset':
        print(f'{split}: {dataset_cfg["type"]} is not a COCO dataset; not checked')
        return True
    dataset = DATASETS.build(dict(dataset_cfg, max_listed=None, lazy_init=True))
    try:
        file_problems = check_files(dataset, decode)
    except DatasetCheckError as err:
        print(f'{split}: REFUSED\n{err}')
        return False
    refused = []
    try:
        dataset.full_init()
    except DatasetCheckError as err:
        refused.append(str(err))
    if file_problems:
        refused.append(
            f'{dataset.ann_file}: {len(file_problems)} image file(s) cut short, '
            f'damaged or turned by EXIF:\n{format_problems(file_problems)}'
        )
    if refused:
        print(f'{split}: REFUSED\n' + '\n'.join(refused))
        return False
    print(
        f'{split}: {dataset.ann_file}: {len(dataset)} images usable, '
        f'{sum(p.count for p in dataset.problems)} annotation(s) fixed or dropped'
    )
    if dataset.problems:
        print(format_problems(dataset.problems))
    return True


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    splits = [split for split in args.splits if cfg.get(f'{split}_dataloader')]
    results = [check_split(cfg, split, args.decode) for split in splits]
    return 0 if all(results) else 1


if __name__ == '__main__':
    sys.exit(main())
