"""CheckedCocoDataset: a CocoDataset that refuses annotation files that would train wrongly. The
checks are pure functions on the json's dicts, shared with ``tools/misc/check_dataset.py``."""
import json
import math
import os.path as osp
import re
from collections import Counter
from dataclasses import dataclass, replace

from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import DATASETS
from mmengine.logging import MMLogger
from PIL import Image
from pycocotools import mask as mask_util

from .limits import MAX_OBJECTS, MAX_PIXELS, pixels_over

EXIF_ORIENTATION = 0x0112
TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
# Where a polygon's vertices may lie: within its image or its own box (at most one image size
# beyond the border), plus POLYGON_MARGIN pixels or fraction of the side, the larger. Annotation
# tools leave vertices a little outside; further out, the polygon was drawn for another image size,
# and rasterisation allocates memory in proportion to its extent (a NaN: without bound).
POLYGON_MARGIN = (4, 0.02)
# pycocotools' compressed RLE: characters '0'..'o', each run ending at one of '0'..'O'
_RLE_CHARACTERS = re.compile('[0-o]*')
_JSON_TYPES = {str: 'string', list: 'array', dict: 'object', type(None): 'null'}

ADVICE = {
    'class not in json': "set the config's metainfo classes to names of the json's categories",
    'class order': "list the config's metainfo classes in the order of the json's categories",
    'unknown category': 'fix its category_id, or add the category to the json "categories"',
    'bad box': 'give bbox as [x, y, width, height] in pixels, four finite numbers',
    'bad image entry': 'give the image positive integer "width" and "height" and a "file_name"',
    'missing image': 'check data_root and data_prefix.img, or remove the image from the json',
    'unreadable image': 'replace the file with a readable PNG/JPEG, or remove the image',
    'size mismatch': 'correct the image\'s "width"/"height" in the json (or the file); python '
                     'tools/misc/check_dataset.py CONFIG tells whether an EXIF orientation '
                     'turns it',
    'bad id': 'ids (image "id"; annotation "id", "image_id", "category_id"; category "id") must be '
              'JSON integers: not true/false, strings or numbers with a decimal point',
    'duplicate image id': 'give every image its own id: pycocotools keeps one of the images and '
                          "hands it the other's annotations too",
    'duplicate annotation id': 'give every annotation its own id',
    'duplicate category id': 'give every category its own id: labels are assigned by id, so two '
                             'categories would share one',
    'rle size': 'the RLE mask "size" must be [height, width] of its image',
    'bad rle': 'RLE "counts" must cover exactly height*width pixels: a list of non-negative '
               'integers or a COCO compressed string (pycocotools.mask.encode writes one)',
    'bad polygon coordinates': 'give polygon parts as flat lists [x1, y1, x2, y2, ...] of finite '
                               'numbers (a NaN or inf makes mask rasterisation allocate memory '
                               'without bound)',
    'polygon outside image': (
        'polygon coordinates are pixels of its image: a vertex may lie outside the image as far as '
        f'its box does (at most one image size), and {POLYGON_MARGIN[0]} pixels or '
        f'{POLYGON_MARGIN[1]:.0%} of the side (the larger) beyond: fix the coordinates (drawn on '
        'another image size? normalised?) or remove the annotation'),
    'box outside image': 'clipped to the image',
    'degenerate box': 'dropped: a box under one pixel wide or high (or wholly outside the image)',
    'bad area': 'set to the box area',
    'bad polygon': 'polygon parts of fewer than three points dropped',
    'no mask': 'dropped: the pipeline loads masks and this instance has none',
    'category not in classes': "dropped: its category is not among the config's metainfo classes",
    'annotation of no image': 'dropped: its image_id is not among the json "images"'}
LIMITS_ADVICE = 'the limits: docs/reliability.md'
BREAK_EVALUATION = ('bad polygon', 'no mask')  # COCO evaluation fails on them: refused in val/test
EVALUATION_ADVICE = ('the COCO evaluator reads this file as it is and fails on it: fix the '
                     'annotation in the json')


class DatasetCheckError(ValueError):
    """An annotation file with problems that cannot be fixed automatically."""


@dataclass(frozen=True)
class Problem:
    """One finding about an annotation file: ``action`` ``'refuse'``, ``'fix'`` or ``'drop'``;
    ``kind`` a key of :data:`ADVICE`, or any name when ``advice`` (what to do) is given; ``detail``
    the values involved; ``img_id``, ``ann_id`` where (None for file-wide or image-wide problems);
    ``count`` how many annotations the finding stands for."""
    action: str
    kind: str
    detail: str
    img_id: object = None
    ann_id: object = None
    advice: str = None
    count: int = 1

    def __str__(self):
        where = 'file' if self.img_id is None else f'image {self.img_id}'
        where += '' if self.ann_id is None else f', annotation {self.ann_id}'
        return f'[{self.action}] {where}: {self.kind}: {self.detail}; ' + (
            self.advice or ADVICE[self.kind])


def load_annotation_file(path):
    """Read a COCO annotation file; a :class:`DatasetCheckError` naming the file, line and column
    (the JSON error its ``__cause__``) when it is no UTF-8 JSON object."""
    try:
        with open(path, encoding='utf-8') as f:
            dataset = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetCheckError(f'cannot parse {path}: {err}. A COCO annotation file is one JSON '
                                'object in UTF-8; tools/misc/check_dataset.py says whether it was '
                                'cut short') from err
    if not isinstance(dataset, dict):
        raise DatasetCheckError(f'{path}: holds a JSON {type(dataset).__name__}; a COCO annotation '
                                'file is one object with "images", "annotations" and "categories"')
    return dataset


def check_ids(dataset):
    """Refusals of the json's image, annotation and category ids that are not JSON integers or
    are used twice: pycocotools' index keeps one entry of a repeated id (a repeated image id hands
    both images' annotations to one file), and Python takes ``true`` and ``1.0`` for 1."""
    problems, images, categories, annotations = [], {}, Counter(), {}  # id -> uses

    def refuse(kind, detail, img_id=None, ann_id=None):
        problems.append(Problem('refuse', kind, detail, img_id, ann_id))

    for img in _entries(dataset, 'images', refuse):
        if type(img.get('id')) is int:  # exact type: bool is an int subclass
            images.setdefault(img['id'], []).append(img.get('file_name'))
        else:
            refuse('bad id', f'image {img.get("file_name")!r}: id {_why(img)}', img.get('id'))
    for img_id, names in images.items():
        if len(names) > 1:
            refuse('duplicate image id', f'{len(names)} images have id {img_id}: file names '
                   f'{", ".join(map(repr, names))}', img_id)
    for cat in _entries(dataset, 'categories', refuse):
        if type(cat.get('id')) is int:
            categories[cat['id']] += 1
        else:
            refuse('bad id', f'category {cat.get("name")!r}: id {_why(cat)}')
    for cat_id, count in categories.items():
        if count > 1:
            refuse('duplicate category id', f'{count} categories have id {cat_id}')
    for ann in _entries(dataset, 'annotations', refuse):
        ann_id, img_id = ann.get('id'), ann.get('image_id')
        bad_keys = [k for k in ('id', 'image_id', 'category_id') if type(ann.get(k)) is not int]
        for key in bad_keys:
            refuse('bad id', f'annotation {key} {_why(ann, key)}', img_id, ann_id)
        if not bad_keys:
            annotations.setdefault(ann_id, []).append(img_id)
    for ann_id, img_ids in annotations.items():
        if len(img_ids) > 1:
            refuse('duplicate annotation id', f'{len(img_ids)} annotations have id {ann_id}, on '
                   f'images {img_ids}', img_ids[0], ann_id)
    return problems


def _entries(dataset, key, refuse):
    """The json's list ``key`` (an absent one is empty); what is not an object is refused."""
    entries = dataset.get(key, [])
    if not isinstance(entries, list):
        refuse('bad id', f'"{key}" is a JSON {type(entries).__name__}, not a list')
        return []
    others = [entry for entry in entries if not isinstance(entry, dict)]
    if others:
        refuse('bad id', f'{len(others)} entries of "{key}" are not objects, such as '
               f'{json.dumps(others[0])[:80]}')
    return [entry for entry in entries if isinstance(entry, dict)]


def _why(entry, key='id'):
    """Why ``entry[key]`` is not an id, in JSON's words."""
    value = entry.get(key)
    return ('is missing' if key not in entry else
            f'is the JSON boolean {json.dumps(value)}' if isinstance(value, bool) else
            f'{value!r} is a number with a decimal point' if isinstance(value, float) else
            f'{json.dumps(value)[:80]} is a JSON {_JSON_TYPES.get(type(value), "value")}')


def check_categories(classes, categories):
    """The config's class names against the json's ``categories``: mmdet numbers labels in the
    json's order, so another order in the config silently gives every label the wrong name."""
    names = [cat['name'] for cat in categories]
    missing = [name for name in classes if name not in names]
    if missing:
        return [Problem('refuse', 'class not in json',
                        f'classes {missing} are not among the json categories {names}')]
    in_json_order = [name for name in names if name in classes]
    if in_json_order != list(classes):
        return [Problem('refuse', 'class order',
                        f'config classes {list(classes)} vs json order {in_json_order}')]
    return []


def check_image(img_info, img_path, verify_size=True):
    """The json's image entry against the file at ``img_path``; ``verify_size`` also compares the
    file's upright size (the loader applies the EXIF orientation) with the json's."""
    img_id, width, height = img_info.get('id'), img_info.get('width'), img_info.get('height')
    if not (all(type(n) is int and n > 0 for n in (width, height)) and img_info.get('file_name')):
        detail = f'file_name={img_info.get("file_name")!r} width={width!r} height={height!r}'
        return [Problem('refuse', 'bad image entry', detail, img_id)]
    if not osp.isfile(img_path):
        return [Problem('refuse', 'missing image', f'{img_path} does not exist', img_id)]
    if not verify_size:
        return []
    try:
        with Image.open(img_path) as image:
            stored = image.size
            # 'exif' in info: read with the header (getexif() of a PNG without it decodes it all)
            orientation = image.getexif().get(EXIF_ORIENTATION, 1) if 'exif' in image.info else 1
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return [Problem('refuse', 'unreadable image', f'{img_path}: {err}', img_id)]
    upright = stored[::-1] if orientation in TRANSPOSING_ORIENTATIONS else stored
    if upright == (width, height):
        return []
    detail = f'{img_path} is {upright[0]}x{upright[1]} upright, the json says {width}x{height}'
    return [Problem('refuse', 'size mismatch', detail, img_id)]


def check_annotations(img_info, anns, category_ids, need_masks):
    """One image's annotations ``anns`` against its entry ``img_info`` (its size bounds the boxes)
    and the json's ``category_ids``: (the usable annotations, fixed copies; the findings). With
    ``need_masks`` (the pipeline loads masks) one without a mask is dropped, where mmdet's loader
    would fail in the middle of training."""
    img_id, width, height = img_info['id'], img_info['width'], img_info['height']
    kept, problems = [], []

    def note(action, ann, kind, detail):
        problems.append(Problem(action, kind, detail, img_id, ann['id']))

    for ann in anns:  # their ids are integers (check_ids)
        box, segm = ann.get('bbox'), ann.get('segmentation')
        if ann['category_id'] not in category_ids:
            refusal = 'unknown category', (f'category_id {ann["category_id"]} (the json has '
                                           f'{sorted(category_ids)})')
        elif not (isinstance(box, (list, tuple)) and len(box) == 4 and all(  # finite, no bool
                type(v) is int or isinstance(v, float) and math.isfinite(v) for v in box)):
            refusal = 'bad box', f'bbox={box!r}'
        # what rasterisation cannot handle safely (ignored annotations are loaded too)
        elif isinstance(segm, list):
            refusal = _polygon_problem(segm, box, width, height)
        else:
            refusal = isinstance(segm, dict) and _rle_problem(segm, width, height)
        if refusal:
            note('refuse', ann, *refusal)
            continue
        if ann.get('ignore', False):
            kept.append(ann)
            continue
        x, y, w, h = box
        x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        if x2 - x1 < 1 or y2 - y1 < 1:
            note('drop', ann, 'degenerate box', f'bbox={list(box)} in a {width}x{height} image')
            continue
        ann = dict(ann)
        if (x1, y1, x2, y2) != (x, y, x + w, y + h):
            ann['bbox'] = [x1, y1, x2 - x1, y2 - y1]
            note('fix', ann, 'box outside image',
                 f'bbox={list(box)} -> {ann["bbox"]} in a {width}x{height} image')
        if not (isinstance(ann.get('area'), (int, float)) and ann['area'] > 0):
            note('fix', ann, 'bad area', f'area={ann.get("area")!r}')
            ann['area'] = float((x2 - x1) * (y2 - y1))
        if isinstance(segm, list) and segm:
            parts = [p for p in segm if len(p) >= 6 and len(p) % 2 == 0]
            if not parts:
                note('drop', ann, 'bad polygon',
                     f'no part with 3 points: lengths {[len(p) for p in segm]}')
                continue
            if len(parts) < len(segm):
                note('fix', ann, 'bad polygon', f'{len(segm) - len(parts)} of {len(segm)} parts')
                ann['segmentation'] = parts
        elif not isinstance(segm, dict) and need_masks:
            note('drop', ann, 'no mask', f'segmentation={segm!r}')
            continue
        kept.append(ann)
    return kept, problems


def _polygon_problem(parts, box, width, height):
    """Non-numbers, non-finite numbers, vertices outside the image and the box by more than
    :data:`POLYGON_MARGIN`. Only C-level passes over the coordinates (sum, slices, min, max):
    polygons are most of a COCO file's numbers."""
    for i, part in enumerate(parts):
        if not isinstance(part, list):
            return 'bad polygon coordinates', f'part {i} is {json.dumps(part)[:60]}, not a list'
        try:
            total = float(sum(part))  # TypeError on anything but numbers; NaN or inf if one is
        except TypeError:
            value = next(v for v in part if not isinstance(v, (int, float)))
            return 'bad polygon coordinates', f'part {i} holds {json.dumps(value)[:60]}'
        except OverflowError:  # integers beyond floating point
            return 'bad polygon coordinates', f'part {i} holds an integer beyond 1e308'
        if not math.isfinite(total):
            value = next((v for v in part if not math.isfinite(v)), None)
            if value is not None:  # else finite but huge: outside the image below
                return 'bad polygon coordinates', f'part {i} holds {value!r}'
        if len(part) < 2:  # no vertex (dropped with the parts of fewer than 3 points)
            continue
        xs, ys = part[0::2], part[1::2]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        if 0 <= x0 and x1 <= width and 0 <= y0 and y1 <= height:  # the usual case
            continue
        # per axis: start a and size n of the box (n < 0: dropped as degenerate), margin m
        (left, right), (top, bottom) = [
            (max(min(0, a, a + n), -side) - m, min(max(side, a, a + n), 2 * side) + m)
            for a, n, side in ((box[0], box[2], width), (box[1], box[3], height))
            for m in [max(POLYGON_MARGIN[0], POLYGON_MARGIN[1] * side)]]
        if x0 < left or x1 > right or y0 < top or y1 > bottom:
            return 'polygon outside image', (
                f'part {i} spans x {x0:g}..{x1:g}, y {y0:g}..{y1:g}; image {width}x{height}, '
                f'bbox {list(box)} (allowed: x {left:g}..{right:g}, y {top:g}..{bottom:g})')
    return None


def _rle_problem(rle, width, height):
    """An RLE's size against its image's, and whether its runs cover exactly its pixels:
    pycocotools leaves the pixels after runs that stop short undefined, reads past the end of a
    string cut in the middle of a run, and turns negative runs into huge ones."""
    size = rle.get('size')
    if not (isinstance(size, (list, tuple)) and list(size) == [height, width]):
        return 'rle size', f'size={size!r}, image {height}x{width}'
    counts, pixels = rle.get('counts'), height * width
    if isinstance(counts, list):
        if not all(isinstance(run, int) for run in counts):
            value = next(run for run in counts if type(run) is not int)
            return 'bad rle', f'counts hold {json.dumps(value)[:60]}, not an integer'
        covered, shortest = sum(counts), min(counts, default=0)
        if shortest < 0 or covered != pixels:
            return 'bad rle', (f'the runs cover {covered} pixels (shortest run {shortest}), the '
                               f'image {height}x{width} = {pixels}')
        return None
    if not isinstance(counts, str):
        return 'bad rle', f'counts={json.dumps(counts)[:60]}, not a list or a string'
    valid = _RLE_CHARACTERS.match(counts).end()
    if valid < len(counts):
        return 'bad rle', (f'counts {counts[:40]!r}...: character {counts[valid]!r} is not in '
                           "the compressed RLE alphabet '0'..'o'")
    if counts[-1:] > 'O':
        return 'bad rle', f'counts {counts[:40]!r}...: the string ends in the middle of a run'
    # pycocotools refuses runs reaching past its mask: they cover exactly `pixels` when they fit
    # into `pixels` and not into `pixels - 1`
    fault = ('more' if not _decodes(counts, [height, width]) else
             'fewer' if _decodes(counts, [1, pixels - 1]) else None)
    return fault and ('bad rle', f'the runs of counts {counts[:40]!r}... cover {fault} pixels '
                                 f'than the image {height}x{width} = {pixels}')


def _decodes(counts, size):
    """Whether pycocotools decodes ``counts`` into a mask of ``size`` (runs not past the mask)."""
    try:
        mask_util.decode(dict(size=size, counts=counts))
    except ValueError:
        return False
    return True


def format_problems(problems, limit=None):
    """One line per problem (the first ``limit`` of them), then how many were left out."""
    shown = problems[:limit]
    more = [f'  ... and {len(problems) - len(shown)} more'] if len(problems) > len(shown) else []
    return '\n'.join([f'  {problem}' for problem in shown] + more)


def summarize_problems(problems, examples=5):
    """One line per (action, kind): how many, and a few image/annotation ids."""
    groups = {}
    for p in problems:
        groups.setdefault((p.action, p.kind), []).append(p)
    lines = []
    for (action, kind), group in groups.items():
        count = sum(p.count for p in group)
        ids = [f'{p.img_id}' + ('' if p.ann_id is None else f'/{p.ann_id}')
               for p in group[:examples]]
        lines.append(f'  {action} {count} x {kind} ({ADVICE[kind]}); image/annotation ids: '
                     f'{", ".join(ids)}{", ..." if count > examples else ""}')
    return '\n'.join(lines)


class _BadIds(Exception):
    """The ids of an annotation file cannot be indexed (``args[0]``: the problems)."""


class _CheckedCOCO(COCO):
    """mmdet's COCO API on a file read by :func:`load_annotation_file`, indexed only when
    :func:`check_ids` finds nothing."""

    def __init__(self, annotation_file):
        super().__init__()
        self.dataset = load_annotation_file(annotation_file)
        problems = check_ids(self.dataset)
        if problems:
            raise _BadIds(problems)
        self.createIndex()
        self.img_ann_map, self.cat_img_map = self.imgToAnns, self.catToImgs  # mmdet's names


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """:class:`~mmdet.datasets.CocoDataset` that checks every image and annotation while loading
    (mmdet skips bad ones silently or fails mid-training): each problem is fixed or dropped with a
    warning, or stops the run listing every one (docs/reliability.md). A validation/test file also
    refuses what COCO evaluation would fail on.

    Args:
        verify_image_size (bool): open each image's header to compare its upright size with the
            json's (a file open per image).
        max_listed (int): at most this many refused problems in the error message.
        max_pixels (int | None): refuse images whose json width * height is larger (decoding and
            mask pasting take memory in proportion); None: no limit.
        max_objects (int | None): refuse images with more annotations of the config's classes
            (training memory grows with them); None: no limit.
        *args, **kwargs: as :class:`~mmdet.datasets.CocoDataset`.
    """
    COCOAPI = _CheckedCOCO

    def __init__(self, *args, verify_image_size=True, max_listed=50, max_pixels=MAX_PIXELS,
                 max_objects=MAX_OBJECTS, **kwargs):
        self.verify_image_size, self.max_listed = verify_image_size, max_listed
        self.max_pixels, self.max_objects = max_pixels, max_objects
        self.problems = []
        super().__init__(*args, **kwargs)

    def load_data_list(self):
        self.problems, self._category_ids = [], None
        self._outside_classes = Counter()  # category id -> annotations dropped
        try:
            data_list = super().load_data_list()
        except _BadIds as err:  # nothing indexed, no image looked at
            self.problems, data_list = err.args[0], []
        self._report(data_list)
        return data_list

    def parse_data_info(self, raw_data_info):
        coco = self.coco
        if self._category_ids is None:  # the first image: the json's categories are at hand
            self._category_ids = set(coco.cats)
            self._category_names = {i: cat.get('name') for i, cat in coco.cats.items()}
            self.problems += check_categories(self.metainfo['classes'],
                                              coco.dataset.get('categories', []))
            # pycocotools indexes annotations by image_id: those of no image are never loaded
            for img_id, anns in coco.imgToAnns.items():
                if img_id not in coco.imgs:
                    ids = f'{[a["id"] for a in anns[:5]]}{", ..." if len(anns) > 5 else ""}'
                    self.problems.append(Problem(
                        'drop', 'annotation of no image',
                        f'{len(anns)} annotation(s) (ids {ids}) name image_id {img_id}', img_id,
                        count=len(anns)))
        img_info = dict(raw_data_info['raw_img_info'], id=raw_data_info['raw_img_info']['img_id'])
        img_path = osp.join(self.data_prefix.get('img', ''), str(img_info.get('file_name', '')))
        # remote storage (backend_args): a file check would cost a request per image
        image_problems = self._over_limit('max_pixels', img_info, img_path)
        if not (self.backend_args or image_problems):
            image_problems = check_image(img_info, img_path, self.verify_image_size)
        self.problems += image_problems
        if any(p.kind in ('bad image entry', 'over max_pixels') for p in image_problems):
            return dict(img_path=img_path, img_id=img_info['id'], instances=[])  # refused
        anns, ann_problems = check_annotations(
            img_info, raw_data_info['raw_ann_info'], self._category_ids,
            any(isinstance(t, LoadAnnotations) and t.with_mask  # the pipeline loads masks
                for t in getattr(self.pipeline, 'transforms', [])))
        self.problems += ann_problems
        kept = [ann for ann in anns if ann['category_id'] in self.cat_ids]
        self._outside_classes.update(ann['category_id'] for ann in anns
                                     if ann['category_id'] not in self.cat_ids)
        self.problems += self._over_limit('max_objects', img_info, img_path, len(kept))
        return super().parse_data_info(dict(raw_data_info, raw_ann_info=kept))

    def _over_limit(self, key, img_info, img_path, objects=None):
        """A refusal when the image is over ``self.<key>`` (pixels, or ``objects``)."""
        limit, width, height = getattr(self, key), img_info.get('width'), img_info.get('height')
        loader = 'val_dataloader (or test_)' if self.test_mode else 'train_dataloader'
        how = f'{loader}.dataset.{key}=N in the config or in --cfg-options (None: no limit)'
        if key == 'max_pixels':  # sizes that are not integers: check_image refuses the entry
            detail = (type(width) is int and type(height) is int
                      and pixels_over(img_path, width, height, limit, how))
        else:
            detail = limit is not None and objects > limit and (
                f'{img_path}: {objects:,} annotations of the classes, over the limit of '
                f'{limit:,}; training memory grows with them. Split the image, or raise the '
                f'limit with {how}')
        return [Problem('refuse', f'over {key}', detail, img_info['id'],
                        advice=LIMITS_ADVICE)] if detail else []

    def filter_data(self):
        data_list, loaded = super().filter_data(), len(self.data_list)
        if not data_list:
            what = f'{self.ann_file} gives no images' + (
                f' after filtering ({loaded} loaded; filter_cfg={self.filter_cfg})'
                if loaded else '')
            raise DatasetCheckError(
                f'{what}: an evaluation on it would be meaningless. Point the val/test dataloader '
                'at an annotation file with images, or turn validation off (val_dataloader=None, '
                'val_cfg=None, val_evaluator=None).' if self.test_mode else
                f'{what}: nothing to train on. Point train_dataloader at a non-empty file.')
        if len(data_list) < loaded:
            MMLogger.get_current_instance().info(
                f'{self.ann_file}: filter_cfg={self.filter_cfg} left out '
                f'{loaded - len(data_list)} of {loaded} images')
        return data_list

    def _report(self, data_list):
        for cat_id, count in sorted(self._outside_classes.items()):
            detail = f'{count} annotation(s) of category {cat_id} {self._category_names[cat_id]!r}'
            self.problems.append(Problem('drop', 'category not in classes', detail, count=count))
        if self.test_mode:  # the evaluator reads the file as it is: it cannot be fixed on the fly
            self.problems = [replace(p, action='refuse', advice=EVALUATION_ADVICE)
                             if p.kind in BREAK_EVALUATION else p for p in self.problems]
        refused = [p for p in self.problems if p.action == 'refuse']
        if refused:
            raise DatasetCheckError(
                f'{self.ann_file}: {len(refused)} problem(s) that cannot be fixed automatically '
                f'(images under {self.data_prefix.get("img")}):\n'
                f'{format_problems(refused, self.max_listed)}\n'
                'List every problem with: python tools/misc/check_dataset.py CONFIG')
        logger = MMLogger.get_current_instance()
        if self.problems:
            logger.warning(f'{self.ann_file}: fixed or dropped '
                           f'{sum(p.count for p in self.problems)} annotation(s):\n'
                           f'{summarize_problems(self.problems)}')
        negatives = sum(not info['instances'] for info in data_list)
        if negatives and not self.test_mode:
            dropped = self.filter_cfg and self.filter_cfg.get('filter_empty_gt', False)
            logger.info(f'{self.ann_file}: {negatives} image(s) without annotations ' + (
                'dropped (filter_cfg.filter_empty_gt=True)' if dropped else 'kept as negatives'))
