"""Checks of a COCO-format annotation file, image by image: what is wrong and what to do about it.

Pure functions on the json's dicts (no dataset object), used by
:class:`~mmdet_dinov2.datasets.CheckedCocoDataset` and ``tools/misc/check_dataset.py``. Each finding
is a :class:`Problem` whose ``action`` says what happens to it:

- ``refuse``: training cannot go on (a missing image, an unknown category id, ...);
- ``fix``: the annotation is corrected (a box reaching outside its image is clipped, ...);
- ``drop``: the annotation is left out, because nothing sensible can be learnt from it.
"""
import math
import os.path as osp
from collections import Counter
from dataclasses import dataclass, replace

from PIL import Image

__all__ = ['Problem', 'check_annotations', 'check_categories', 'check_image', 'for_evaluation',
           'format_problems', 'summarize_problems']

_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height

ADVICE = {
    'class not in json': "set the config's metainfo classes to names of the json's categories",
    'class order': "list the config's metainfo classes in the order of the json's categories",
    'unknown category': 'fix its category_id, or add the category to the json "categories"',
    'bad box': 'give bbox as [x, y, width, height] in pixels, four finite numbers',
    'bad image entry': 'give the image positive integer "width" and "height" and a "file_name"',
    'missing image': 'check data_root and data_prefix.img, or remove the image from the json',
    'unreadable image': 'replace the file with a readable PNG/JPEG, or remove the image',
    'size mismatch': 'correct the image\'s "width"/"height" in the json (or the file)',
    'exif rotation': ('the json follows the stored pixels but the loader turns the image '
                      'upright by its EXIF orientation: re-save the file upright without the '
                      "orientation tag, or load with "
                      "LoadImageFromFile(color_type='color_ignore_orientation')"),
    'rle size': 'the RLE mask "size" must be [height, width] of its image',
    'box outside image': 'clipped to the image',
    'degenerate box': 'dropped: a box under one pixel wide or high (or wholly outside the image)',
    'bad area': 'set to the box area',
    'bad polygon': 'polygon parts of fewer than three points dropped',
    'no mask': 'dropped: the pipeline loads masks and this instance has none',
}
# Problems that COCO evaluation (pycocotools, reading the annotation file as it is) fails on: in a
# validation or test file they cannot be fixed on the fly and are refused.
BREAK_EVALUATION = ('bad polygon', 'no mask')
EVALUATION_ADVICE = ('the COCO evaluator reads this file as it is and fails on it: fix the '
                     'annotation in the json')


@dataclass(frozen=True)
class Problem:
    """One finding about an annotation file.

    Args:
        action (str): ``'refuse'``, ``'fix'`` or ``'drop'`` (see the module docstring).
        kind (str): a key of :data:`ADVICE`.
        img_id: the image's id (None for file-wide problems).
        ann_id: the annotation's id (None for image-wide problems).
        detail (str): the values involved.
        advice (str | None): what to do, when not the kind's usual :data:`ADVICE`.
    """
    action: str
    kind: str
    img_id: object
    ann_id: object
    detail: str
    advice: str = None

    def __str__(self):
        where = 'file' if self.img_id is None else f'image {self.img_id}'
        if self.ann_id is not None:
            where += f', annotation {self.ann_id}'
        advice = self.advice or ADVICE[self.kind]
        return f'[{self.action}] {where}: {self.kind}: {self.detail}; {advice}'


def check_categories(classes, categories):
    """The config's class names against the json's ``categories``.

    mmdet maps the json's categories to labels in the json's order, whatever the order of the
    config's ``classes``: a different order silently gives every label the wrong name.
    """
    names = [cat['name'] for cat in categories]
    missing = [name for name in classes if name not in names]
    if missing:
        return [Problem('refuse', 'class not in json', None, None,
                        f'classes {missing} are not among the json categories {names}')]
    in_json_order = [name for name in names if name in classes]
    if in_json_order != list(classes):
        return [Problem('refuse', 'class order', None, None,
                        f'config classes {list(classes)} vs json order {in_json_order}')]
    return []


def check_image(img_info, img_path, verify_size=True):
    """The json's image entry against the file on disk.

    Args:
        img_info (dict): the json's image entry (``id``, ``file_name``, ``width``, ``height``).
        img_path (str): where the file should be.
        verify_size (bool): open the file's header and compare its upright size (after the EXIF
            orientation the loader applies) with the json's width and height.
    """
    img_id, width, height = img_info.get('id'), img_info.get('width'), img_info.get('height')
    if not (_positive_int(width) and _positive_int(height) and img_info.get('file_name')):
        return [Problem('refuse', 'bad image entry', img_id, None,
                        f'file_name={img_info.get("file_name")!r} width={width!r} '
                        f'height={height!r}')]
    if not osp.isfile(img_path):
        return [Problem('refuse', 'missing image', img_id, None, f'{img_path} does not exist')]
    if not verify_size:
        return []
    try:
        with Image.open(img_path) as image:
            stored = image.size
            # 'exif' in info: EXIF read with the header (getexif() of a PNG without it decodes
            # the whole image, 1 ms instead of 20 us)
            orientation = (image.getexif().get(_EXIF_ORIENTATION, 1) if 'exif' in image.info
                           else 1)
    except (OSError, SyntaxError, ValueError) as err:
        return [Problem('refuse', 'unreadable image', img_id, None, f'{img_path}: {err}')]
    upright = stored[::-1] if orientation in _TRANSPOSING_ORIENTATIONS else stored
    if upright == (width, height):
        return []
    kind = 'exif rotation' if stored == (width, height) else 'size mismatch'
    return [Problem('refuse', kind, img_id, None,
                    f'{img_path} is {upright[0]}x{upright[1]} upright (stored {stored[0]}x'
                    f'{stored[1]}, EXIF orientation {orientation}), the json says '
                    f'{width}x{height}')]


def check_annotations(img_info, anns, category_ids, need_masks):
    """Check one image's annotations; return the usable ones (fixed copies) and the findings.

    Args:
        img_info (dict): the json's image entry (its ``width``/``height`` bound the boxes).
        anns (list[dict]): the image's annotations.
        category_ids (set): the ids of the json's ``categories``.
        need_masks (bool): the pipeline loads instance masks (an annotation without one is dropped,
            where mmdet's loader would fail with a KeyError in the middle of training).

    Returns:
        tuple[list[dict], list[Problem]]
    """
    img_id, width, height = img_info['id'], img_info['width'], img_info['height']
    kept, problems = [], []

    def note(action, kind, ann, detail):
        problems.append(Problem(action, kind, img_id, ann.get('id'), detail))

    for ann in anns:
        if ann.get('category_id') not in category_ids:
            note('refuse', 'unknown category', ann,
                 f'category_id {ann.get("category_id")!r} (the json has {sorted(category_ids)})')
            continue
        box = ann.get('bbox')
        if not (isinstance(box, (list, tuple)) and len(box) == 4
                and all(isinstance(v, (int, float)) and math.isfinite(v) for v in box)):
            note('refuse', 'bad box', ann, f'bbox={box!r}')
            continue
        if ann.get('ignore', False):
            kept.append(ann)
            continue
        x, y, w, h = box
        x1, y1 = max(x, 0), max(y, 0)
        x2, y2 = min(x + w, width), min(y + h, height)
        if x2 - x1 < 1 or y2 - y1 < 1:
            note('drop', 'degenerate box', ann, f'bbox={list(box)} in a {width}x{height} image')
            continue
        ann = dict(ann)
        if (x1, y1, x2, y2) != (x, y, x + w, y + h):
            ann['bbox'] = [x1, y1, x2 - x1, y2 - y1]
            note('fix', 'box outside image', ann,
                 f'bbox={list(box)} -> {ann["bbox"]} in a {width}x{height} image')
        if not (isinstance(ann.get('area'), (int, float)) and ann['area'] > 0):
            note('fix', 'bad area', ann, f'area={ann.get("area")!r}')
            ann['area'] = float((x2 - x1) * (y2 - y1))
        segm = ann.get('segmentation')
        if isinstance(segm, list) and segm:
            parts = [p for p in segm if len(p) >= 6 and len(p) % 2 == 0]
            if not parts:
                note('drop', 'bad polygon', ann, f'no part with 3 points: lengths '
                     f'{[len(p) for p in segm]}')
                continue
            if len(parts) < len(segm):
                note('fix', 'bad polygon', ann, f'{len(segm) - len(parts)} of {len(segm)} parts')
                ann['segmentation'] = parts
        elif isinstance(segm, dict):
            if list(segm.get('size', ())) != [height, width]:
                note('refuse', 'rle size', ann,
                     f'size={segm.get("size")!r}, image {height}x{width}')
                continue
        elif need_masks:
            note('drop', 'no mask', ann, f'segmentation={segm!r}')
            continue
        kept.append(ann)
    return kept, problems


def for_evaluation(problems):
    """The findings for a validation/test file: what would break COCO evaluation is refused."""
    return [replace(p, action='refuse', advice=EVALUATION_ADVICE)
            if p.kind in BREAK_EVALUATION else p for p in problems]


def format_problems(problems, limit=None):
    """One line per problem (the first ``limit`` of them), then how many were left out."""
    shown = problems if limit is None else problems[:limit]
    lines = [f'  {problem}' for problem in shown]
    if len(problems) > len(shown):
        lines.append(f'  ... and {len(problems) - len(shown)} more')
    return '\n'.join(lines)


def summarize_problems(problems, examples=5):
    """One line per (action, kind): how many, and a few image/annotation ids."""
    counts = Counter((p.action, p.kind) for p in problems)
    lines = []
    for (action, kind), count in counts.items():
        ids = [f'{p.img_id}/{p.ann_id}' if p.ann_id is not None else f'{p.img_id}'
               for p in problems if (p.action, p.kind) == (action, kind)][:examples]
        lines.append(f'  {action} {count} x {kind} ({ADVICE[kind]}); image/annotation ids: '
                     f'{", ".join(ids)}{", ..." if count > examples else ""}')
    return '\n'.join(lines)


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
