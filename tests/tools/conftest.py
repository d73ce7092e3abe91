"""Fixtures for the tool tests: a tiny COCO-format dataset, the command-line options that point
tests/tools/tiny_config.py at it, and one tools/train.py run and tools/test.py dump that the
tool, demo and analysis tests share."""
import contextlib
import io
import os
import runpy
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


def _run_script_here(script, args):
    """Run ``python SCRIPT ARGS`` in this process: the script as ``__main__`` with its folder first
    on sys.path and ``sys.argv`` set; matplotlib's settings and figures, sys.argv and sys.path as
    they were afterwards. Returns what it printed; fails the test if it exits with an error."""
    import matplotlib
    import matplotlib.pyplot as plt
    argv, path, printed = sys.argv, sys.path[:], io.StringIO()
    sys.argv = command = [str(script), *args]
    sys.path.insert(0, str(script.parent))
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed), \
                matplotlib.rc_context():
            runpy.run_path(str(script), run_name='__main__')
    except SystemExit as exit:
        if exit.code not in (None, 0):
            pytest.fail(f'{" ".join(command)} exited with {exit.code}:\n'
                        f'{printed.getvalue()[-6000:]}')
    finally:
        sys.argv, sys.path[:] = argv, path
        plt.close('all')
    return printed.getvalue()


@pytest.fixture(scope='session')
def tool_in_process():
    """``tool_in_process(name, *args, data=root)``: ``tools/<name>`` (a Python script) as ``tool``
    runs it, in this process instead of a new interpreter; returns what it printed. For the
    scripts whose output and files are what a test checks, not their process (mmengine's named
    instances, such as mmdet's visualizer, are then the process's, as in a training run)."""
    def run(name, *args, data=None):
        command = [str(a) for a in args] + (_data_options(data) if data is not None else [])
        return _run_script_here(ROOT / 'tools' / name, command)
    return run


@pytest.fixture(scope='session')
def trained_work_dir(tmp_path_factory, tiny_coco, tool):
    """tools/train.py's work dir after one epoch (4 iterations, then validation) of the tiny config
    in one process. Tests only read it; one that trains further works on a copy."""
    work_dir = tmp_path_factory.mktemp('tools_train')
    tool('train.py', TINY_CONFIG, '--work-dir', work_dir, '--cfg-options',
         'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', data=tiny_coco)
    return work_dir


@pytest.fixture(scope='session')
def predictions_dump(tmp_path_factory, tiny_coco, tool, trained_work_dir):
    """tools/test.py --out on the validation images with ``trained_work_dir``'s checkpoint: the
    dump's path (``preds.pkl`` in the test run's work dir)."""
    work_dir = tmp_path_factory.mktemp('test_dump')
    tool('test.py', TINY_CONFIG, trained_work_dir / 'epoch_1.pth', '--work-dir', work_dir,
         '--out', work_dir / 'preds.pkl', data=tiny_coco)
    return work_dir / 'preds.pkl'


@pytest.fixture(scope='session')
def tiny_config():
    return TINY_CONFIG


@pytest.fixture(scope='session')
def classes():
    """The shapes classes: the tiny config's, label index -> name."""
    return coco.CLASSES
