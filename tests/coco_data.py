"""COCO-format datasets for the tests, with the classes and the file layout of the shapes dataset.

The class list and the annotation file writer are those of ``tools/misc/make_shapes_dataset.py``
(``CLASSES``, ``write_annotations``), so the tests, the tiny config and the demo share them.
"""
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers import load_tool

shapes = load_tool('tools/misc/make_shapes_dataset.py')
CLASSES = shapes.CLASSES


def draw(width, height, boxes, seed):
    """An RGB image with a noisy background and a filled rectangle per box."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    for i, (x, y, w, h) in enumerate(boxes):
        colour = (200, 60, 60) if i % 2 == 0 else (60, 200, 60)
        pixels[int(y):int(y + h), int(x):int(x + w)] = colour
    return Image.fromarray(pixels)


def write_split(root, split, entries):
    """Write ``root/split/*.png`` and ``root/annotations/instances_split.json``; image ids count
    from 1 in the order of ``entries``.

    Args:
        entries (list[dict]): per image ``name``, ``size`` (w, h), ``anns`` (annotation dicts
            without image_id), optional ``image`` (a PIL image to save instead of a drawn one, or
            False to write no file), ``exif`` (bytes saved with the image) and ``json_size``
            (w, h written to the json instead of ``size``).
    """
    root = Path(root)
    (root / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for img_id, entry in enumerate(entries, start=1):
        width, height = entry['size']
        image = entry.get('image')
        if image is None:
            boxes = [a['bbox'] for a in entry['anns'] if len(a['bbox']) == 4
                     and all(isinstance(v, (int, float)) for v in a['bbox'])]
            image = draw(width, height, boxes, seed=img_id)
        if image is not False:
            image.save(root / split / entry['name'], exif=entry.get('exif', b''))
        json_w, json_h = entry.get('json_size', (width, height))
        images.append(dict(id=img_id, file_name=entry['name'], width=json_w, height=json_h))
        annotations += [dict(ann, image_id=img_id) for ann in entry['anns']]
    shapes.write_annotations(root, split, images, annotations)
    return root


def rect_ann(ann_id, category_id, box):
    """An annotation whose mask is the polygon of its box [x, y, w, h]."""
    x, y, w, h = box
    return dict(id=ann_id, category_id=category_id, bbox=list(box), area=float(w * h),
                iscrowd=0, segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]])


def simple_entries(num, size=64, seed=0, prefix='img'):
    """``num`` images of ``size`` pixels with one or two boxes each, ids unique across images."""
    rng = np.random.default_rng(seed)
    entries, ann_id = [], 1000 * (seed + 1)
    for i in range(num):
        anns = []
        for _ in range(1 + i % 2):
            w, h = rng.integers(size // 4, size // 2, 2)
            x, y = rng.integers(0, size - w), rng.integers(0, size - h)
            ann_id += 1
            anns.append(rect_ann(ann_id, 1 + ann_id % 2, [int(x), int(y), int(w), int(h)]))
        entries.append(dict(name=f'{prefix}{i}.png', size=(size, size), anns=anns))
    return entries
