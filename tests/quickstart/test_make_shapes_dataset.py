"""The shapes dataset generator: valid COCO, masks consistent with boxes, deterministic, atomic."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

TINY = dict(num_train=5, num_val=3, img_size=96)


@pytest.fixture(scope='module')
def tiny_dataset(shapes_tool, tmp_path_factory):
    out, made = shapes_tool.make_shapes_dataset(tmp_path_factory.mktemp('a') / 'shapes', seed=3,
                                                **TINY)
    assert made
    return out


def tree_bytes(root):
    """Every file below ROOT as {relative path: bytes}."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(Path(root).rglob('*')) if p.is_file()}


@pytest.mark.parametrize('split', ['train', 'val'])
def test_valid_coco_with_masks_matching_boxes(shapes_tool, tiny_dataset, split):
    coco = COCO(str(tiny_dataset / 'annotations' / f'instances_{split}.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(shapes_tool.CLASSES)
    assert len(coco.imgs) == TINY[f'num_{split}']
    assert len(coco.anns) >= 2 * len(coco.imgs)  # at least two shapes an image
    for img_id, info in coco.imgs.items():
        img = np.asarray(Image.open(tiny_dataset / split / info['file_name']))
        assert img.shape == (TINY['img_size'], TINY['img_size'], 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        masks = np.stack([coco.annToMask(a) for a in anns]).astype(bool)  # (N, H, W)
        # visible parts: one pixel belongs to at most one shape
        assert masks.sum(0).max() == 1
        for ann, mask in zip(anns, masks):
            assert ann['iscrowd'] == 0 and ann['area'] == mask.sum() > 0
            ys, xs = np.nonzero(mask)
            x, y, w, h = ann['bbox']
            extent = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            np.testing.assert_allclose([x, y, x + w, y + h], extent, atol=1.0)
            inside = np.zeros_like(mask)
            inside[int(y):int(np.ceil(y + h)), int(x):int(np.ceil(x + w))] = True
            assert not (mask & ~inside).any()
            assert mask_utils.area(ann['segmentation']) == ann['area']


def test_same_seed_identical_other_seed_differs(shapes_tool, tiny_dataset, tmp_path):
    again, _ = shapes_tool.make_shapes_dataset(tmp_path / 'same', seed=3, **TINY)
    other, _ = shapes_tool.make_shapes_dataset(tmp_path / 'other', seed=4, **TINY)
    reference = tree_bytes(tiny_dataset)
    assert tree_bytes(again) == reference
    different = tree_bytes(other)
    assert different.keys() == reference.keys()
    assert all(different[k] != reference[k] for k in reference if k.endswith('.png'))


def test_reuses_complete_output_and_replaces_its_own_with_other_args(shapes_tool, tmp_path):
    out = tmp_path / 'shapes'
    assert shapes_tool.make_shapes_dataset(out, seed=0, **TINY)[1]
    stamp = (out / 'annotations' / 'instances_train.json').stat().st_mtime_ns
    assert not shapes_tool.make_shapes_dataset(out, seed=0, **TINY)[1]
    assert (out / 'annotations' / 'instances_train.json').stat().st_mtime_ns == stamp
    assert shapes_tool.make_shapes_dataset(out, seed=0, **dict(TINY, num_val=2))[1]
    assert len(list((out / 'val').glob('*.png'))) == 2
    assert [p.name for p in tmp_path.iterdir()] == ['shapes']  # no staging folders left


def test_interrupted_run_leaves_nothing_that_looks_complete(shapes_tool, tmp_path, monkeypatch):
    real_make_split = shapes_tool.make_split

    def crash_on_val(root, split, *args):
        if split == 'val':
            raise KeyboardInterrupt
        real_make_split(root, split, *args)

    monkeypatch.setattr(shapes_tool, 'make_split', crash_on_val)
    with pytest.raises(KeyboardInterrupt):
        shapes_tool.make_shapes_dataset(tmp_path / 'shapes', **TINY)
    assert list(tmp_path.iterdir()) == []


def test_refuses_foreign_folder_and_bad_sizes(shapes_tool, tmp_path):
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'notes.txt').write_text('user data')
    with pytest.raises(FileExistsError, match='not a dataset made by this tool'):
        shapes_tool.make_shapes_dataset(tmp_path / 'mine', **TINY)
    assert (tmp_path / 'mine' / 'notes.txt').read_text() == 'user data'
    with pytest.raises(ValueError, match='--num-val 0'):
        shapes_tool.make_shapes_dataset(tmp_path / 'x', **dict(TINY, num_val=0))


def test_cli(shapes_tool, tmp_path):
    cmd = [sys.executable, shapes_tool.__file__, '--out', str(tmp_path / 'd'), '--num-train', '2',
           '--num-val', '1', '--img-size', '64', '--seed', '1']
    first = subprocess.run(cmd, capture_output=True, text=True, check=True)
    second = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert first.stdout.startswith('generated') and second.stdout.startswith('reusing')
    assert (tmp_path / 'd' / 'annotations' / 'instances_val.json').is_file()
    assert len(list((tmp_path / 'd' / 'train').glob('*.png'))) == 2
