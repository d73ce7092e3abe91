"""Fixtures for the tool tests: a tiny COCO-format dataset and the command-line options that point
tests/tools/tiny_config.py at it."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

from tests import coco_data as coco
from tests.helpers import REPO as ROOT
from tests.helpers import TINY_CONFIG

IMG_SIZE = 96


def _big_shape_image(rng, category_id):
    """One image holding one shape of about 56x56 pixels on a noisy background.

    At about the size of the 64-pixel anchors, the proposals of an untrained detector hit the
    object by chance (IoU > 0.5), so that the evaluation tests compare non-zero AP.
    """
    img = Image.fromarray(rng.integers(0, 90, (IMG_SIZE, IMG_SIZE, 3), dtype=np.uint8))
    mask_img = Image.new('L', (IMG_SIZE, IMG_SIZE), 0)
    side = int(rng.integers(48, 64))
    x0, y0 = (int(v) for v in rng.integers(2, IMG_SIZE - side - 2, 2))
    box = [x0, y0, x0 + side, y0 + side]
    colour = tuple(int(v) for v in rng.integers(150, 256, 3))
    for canvas, fill in ((ImageDraw.Draw(img), colour), (ImageDraw.Draw(mask_img), 1)):
        if category_id == 1:
            canvas.ellipse(box, fill=fill)
        else:
            canvas.rectangle(box, fill=fill)
    mask = np.asfortranarray(np.array(mask_img, dtype=np.uint8))
    rle = mask_utils.encode(mask)
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    rle['counts'] = rle['counts'].decode()
    return img, dict(category_id=category_id, bbox=[x, y, w, h], area=float(mask.sum()),
                     segmentation=rle, iscrowd=0)


def write_tiny_coco(root, splits=(('train', 8), ('val', 4)), seed=0):
    """Write ``root/annotations/instances_{split}.json`` and ``root/{split}/*.png``."""
    rng = np.random.default_rng(seed)
    for split, count in splits:
        entries = []
        for i in range(count):
            img, ann = _big_shape_image(rng, category_id=1 + i % 3)
            entries.append(dict(name=f'{i:06d}.png', size=(IMG_SIZE, IMG_SIZE), image=img,
                                anns=[dict(ann, id=i + 1)]))
        coco.write_split(root, split, entries)
    return root


def _data_options(root):
    """``--cfg-options`` that point the tiny config's loaders and evaluators at ``root``."""
    ann = f'{root}/annotations/instances_val.json'
    return ['--cfg-options'] + [f'{loader}.dataset.data_root={root}/' for loader in
                                ('train_dataloader', 'val_dataloader', 'test_dataloader')] + [
        f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}']


def _run_tool(args, timeout=600, env=None):
    """Run a command from the repository root; fail the test with its output if it fails."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1', **(env or {}))
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f'{" ".join(map(str, args))} exited with {result.returncode}:\n'
                    f'{result.stdout[-4000:]}\n{result.stderr[-6000:]}')
    return result


@pytest.fixture(scope='session')
def tiny_coco(tmp_path_factory):
    """A dataset of 8 training and 4 validation images (written once per session)."""
    return write_tiny_coco(tmp_path_factory.mktemp('tiny_coco'))


@pytest.fixture(scope='session')
def tool():
    """Runs ``tools/<name>`` with the tiny config's data options: ``tool(name, *args, data=root)``."""
    def run(name, *args, data=None, timeout=600, env=None):
        command = [str(a) for a in args]
        if data is not None:
            command += _data_options(data)
        prefix = ['bash'] if name.endswith('.sh') else [sys.executable]
        return _run_tool(prefix + [str(ROOT / 'tools' / name)] + command, timeout, env)
    return run


@pytest.fixture(scope='session')
def tiny_config():
    return TINY_CONFIG


@pytest.fixture(scope='session')
def classes():
    """The shapes classes: the tiny config's, label index -> name."""
    return coco.CLASSES
