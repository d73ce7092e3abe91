"""Generate a small COCO-format instance-segmentation dataset of shapes on cluttered backgrounds.

Four classes (circle, triangle, rectangle, star) of varied size, rotation and colour are painted on
textured backgrounds (colour gradient, blotches, pixel noise, distractor lines). Later shapes occlude
earlier ones: every annotation is the *visible* part of its shape, stored as compressed RLE, with the
box taken from that mask's extent. Placements that would hide most of an earlier shape are rejected,
so every shape seen in an image is annotated.

The output depends only on the arguments (deterministic from ``--seed``). It is written to a hidden
sibling folder and renamed into place when complete, so an interrupted run never leaves a folder that
looks finished; running again with the same arguments reuses a complete dataset.

Layout::

    OUT/annotations/instances_train.json  OUT/annotations/instances_val.json
    OUT/train/000000.png ...               OUT/val/000000.png ...
    OUT/shapes_dataset.json                (the arguments; written last, marks the folder complete)

Usage::

    python tools/misc/make_shapes_dataset.py --out data/shapes [--num-train 300] [--num-val 100]
        [--img-size 256] [--seed 0]
"""
import argparse
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

CLASSES = ('circle', 'triangle', 'rectangle', 'star')
GENERATOR = 'mmdet_dinov2 shapes v1'
META_FILE = 'shapes_dataset.json'
SPLITS = ('train', 'val')

MIN_RADIUS, MAX_RADIUS = 0.06, 0.2  # shape radius as a fraction of the image side
MIN_VISIBLE_FRACTION = 0.45  # a shape keeps at least this share of its own area visible
MIN_VISIBLE_PIXELS = 48
MIN_CONTRAST = 110  # L1 distance (0..765) between a shape's colour and the background beneath it


def shape_polygon(cls_name, center, radius, angle, rng):
    """Vertices of one shape, or None for a circle (drawn as an ellipse).

    Args:
        cls_name (str): one of CLASSES.
        center (tuple[float, float]): (x, y) in pixels.
        radius (float): circumradius in pixels.
        angle (float): rotation in radians.
        rng (np.random.Generator): for per-shape jitter (aspect ratio, star depth, vertex angles).
    """
    if cls_name == 'circle':
        return None
    if cls_name == 'triangle':
        angles = angle + np.array([0., 2., 4.]) * math.pi / 3 + rng.uniform(-0.25, 0.25, 3)
        radii = radius * rng.uniform(0.85, 1.0, 3)
    elif cls_name == 'rectangle':
        half_diag_angle = math.atan(rng.uniform(0.45, 2.2))  # aspect ratio h / w
        angles = angle + np.array([half_diag_angle, math.pi - half_diag_angle,
                                   math.pi + half_diag_angle, -half_diag_angle])
        radii = np.full(4, radius)
    elif cls_name == 'star':
        angles = angle + np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, radius, radius * rng.uniform(0.38, 0.5))
    else:
        raise ValueError(f'unknown shape class {cls_name!r}; expected one of {CLASSES}')
    xs = center[0] + radii * np.cos(angles)
    ys = center[1] + radii * np.sin(angles)
    return list(zip(xs.tolist(), ys.tolist()))


def draw_shape_mask(size, cls_name, center, radius, angle, rng):
    """Boolean (size, size) mask of one whole shape."""
    canvas = Image.new('L', (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    polygon = shape_polygon(cls_name, center, radius, angle, rng)
    if polygon is None:
        x, y = center
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=1)
    else:
        draw.polygon(polygon, fill=1)
    return np.asarray(canvas, dtype=bool)


def textured_background(size, rng):
    """(size, size, 3) float image: colour gradient + low-frequency blotches + distractor lines."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(direction) * xx + np.sin(direction) * yy)
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)  # (H, W) in [0, 1]
    c0, c1 = rng.uniform(0, 255, (2, 3))
    img = c0 + ramp[..., None] * (c1 - c0)  # (H, W, 3)
    coarse = rng.normal(0, 1, (6, 6, 3))
    blotches = np.asarray(Image.fromarray(((coarse + 3) * 40).clip(0, 255).astype(np.uint8))
                          .resize((size, size), Image.BICUBIC), dtype=np.float64) - 120
    img = img + 0.35 * blotches

    canvas = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(3, 9)):
        x0, y0, x1, y1 = rng.uniform(-0.1, 1.1, 4) * size
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.line([x0, y0, x1, y1], fill=color, width=int(rng.integers(1, 4)))
    return np.asarray(canvas, dtype=np.float64)


def render_image(size, rng, max_shapes=6, max_tries=30):
    """Paint one image.

    Returns:
        tuple[np.ndarray, list[tuple[int, np.ndarray]]]: the (H, W, 3) uint8 image and, per kept
        shape, its class index and boolean visible mask.
    """
    img = textured_background(size, rng)
    owner = np.full((size, size), -1, dtype=np.int64)  # index of the shape that shows at each pixel
    full_areas, labels = [], []
    for _ in range(rng.integers(2, max_shapes + 1)):
        for _ in range(max_tries):
            label = int(rng.integers(len(CLASSES)))
            radius = rng.uniform(MIN_RADIUS, MAX_RADIUS) * size
            center = rng.uniform(radius, size - radius, 2)
            mask = draw_shape_mask(size, CLASSES[label], center, radius,
                                   rng.uniform(0, 2 * math.pi), rng)
            after = np.where(mask, len(labels), owner)
            visible = np.bincount(after[after >= 0].ravel(), minlength=len(labels) + 1)
            needed = np.maximum(MIN_VISIBLE_FRACTION * np.array(full_areas + [mask.sum()]),
                                MIN_VISIBLE_PIXELS)
            if (visible >= needed).all():
                break
        else:
            continue  # no placement leaves every shape visible enough: paint fewer shapes
        beneath = img[mask].mean(axis=0)
        for _ in range(max_tries):
            color = rng.uniform(0, 255, 3)
            if np.abs(color - beneath).sum() >= MIN_CONTRAST:
                break
        shading = rng.uniform(-25, 25, 2)  # a gentle linear gradient across the shape
        ys, xs = np.nonzero(mask)
        img[ys, xs] = color + (np.stack([xs - center[0], ys - center[1]], 1) / radius) @ shading[:, None]
        owner = after
        full_areas.append(int(mask.sum()))
        labels.append(label)
    img = img + rng.normal(0, 6, img.shape)  # sensor noise over everything
    shapes = [(label, owner == i) for i, label in enumerate(labels)]
    return img.clip(0, 255).round().astype(np.uint8), shapes


def make_split(root, split, num_images, img_size, seed):
    """Write ROOT/<split>/*.png and ROOT/annotations/instances_<split>.json."""
    (root / split).mkdir(parents=True)
    images, annotations = [], []
    for index in range(num_images):
        rng = np.random.default_rng([seed, SPLITS.index(split), index])
        img, shapes = render_image(img_size, rng)
        file_name = f'{index:06d}.png'
        Image.fromarray(img).save(root / split / file_name)
        image_id = index + 1
        images.append(dict(id=image_id, file_name=file_name, width=img_size, height=img_size))
        for label, visible in shapes:
            rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id, category_id=label + 1,
                segmentation=dict(size=rle['size'], counts=rle['counts'].decode('ascii')),
                area=int(visible.sum()), bbox=[float(v) for v in mask_utils.toBbox(rle)],
                iscrowd=0))
    write_annotations(root, split, images, annotations,
                      info=dict(description=f'{GENERATOR}, seed {seed}'))


def write_annotations(root, split, images, annotations, **fields):
    """Write ROOT/annotations/instances_<split>.json with CLASSES as its categories (ids from 1).

    The tests write their COCO-format datasets with it too, so that every dataset of this
    project's tests and demo has the same classes and layout.

    Args:
        root (Path): dataset root.
        split (str): 'train' or 'val'.
        images (list[dict]): COCO image records (id, file_name, width, height).
        annotations (list[dict]): COCO annotation records.
        fields: further top-level keys, written before the others (e.g. ``info``).
    """
    categories = [dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(CLASSES)]
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    with open(root / 'annotations' / f'instances_{split}.json', 'w') as f:
        json.dump(dict(fields, images=images, annotations=annotations, categories=categories), f)


def read_meta(out):
    """The arguments a complete dataset in OUT was made with, or None if OUT holds none."""
    try:
        with open(out / META_FILE) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def make_shapes_dataset(out, num_train=300, num_val=100, img_size=256, seed=0):
    """Create the dataset in OUT unless a complete one with the same arguments is already there.

    Args:
        out (str | Path): dataset root.
        num_train (int): number of training images.
        num_val (int): number of validation images.
        img_size (int): image side in pixels (square images).
        seed (int): random seed; the output is a pure function of all arguments.

    Returns:
        tuple[Path, bool]: the dataset root, and whether it was generated now (False: reused).
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f'need at least one image per split, got --num-train {num_train} '
                         f'--num-val {num_val}')
    if img_size < 32:
        raise ValueError(f'--img-size {img_size} is too small for shapes; use 32 or more')
    out = Path(out)
    meta = dict(generator=GENERATOR, num_train=num_train, num_val=num_val, img_size=img_size,
                seed=seed, classes=list(CLASSES))
    old_meta = read_meta(out)
    if old_meta == meta:
        return out, False
    if out.exists() and old_meta is None and any(out.iterdir()):
        raise FileExistsError(f'{out} exists, is not empty and holds no {META_FILE}: it is not a '
                              f'dataset made by this tool. Remove it or choose another --out.')

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{out.name}.partial-', dir=out.parent))
    try:
        for split, num in zip(SPLITS, (num_train, num_val)):
            make_split(staging, split, num, img_size, seed)
        with open(staging / META_FILE, 'w') as f:
            json.dump(meta, f, indent=1)
        if read_meta(out) == meta:  # a concurrent run finished the same dataset first
            return out, False
        if out.exists():  # empty, or an older dataset of ours made with other arguments
            trash = Path(tempfile.mkdtemp(prefix=f'.{out.name}.old-', dir=out.parent))
            out.rename(trash / out.name)
            shutil.rmtree(trash)
        try:
            staging.rename(out)
        except OSError:  # another run renamed its copy into place between our check and here
            if read_meta(out) != meta:
                raise
            return out, False
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out, True


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', required=True, help='dataset root folder')
    parser.add_argument('--num-train', type=int, default=300)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--img-size', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        out, made = make_shapes_dataset(args.out, args.num_train, args.num_val, args.img_size,
                                        args.seed)
    except (ValueError, FileExistsError) as e:
        sys.exit(f'make_shapes_dataset: {e}')
    print(f'{"generated" if made else "reusing complete"} shapes dataset in {out} '
          f'({args.num_train} train / {args.num_val} val images, {args.img_size}px, '
          f'seed {args.seed})')


if __name__ == '__main__':
    main()
