"""demo/image_demo.py and demo/video_demo.py with the tiny config and a checkpoint trained for a few
iterations: the image demo (mmdet's DetInferencer) gives the detections that tools/test.py dumps
for the same images; the video demo draws every frame of a generated video."""
import json
import pickle
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tests.helpers import load_tool
from tests.tools.conftest import _run_tool

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _demo(name, *args):
    """Run ``demo/<name> ARGS``; fail the test with its output if it fails."""
    return _run_tool([sys.executable, ROOT / 'demo' / name, *map(str, args)])


@pytest.fixture(scope='module')
def trained(trained_work_dir):
    """A checkpoint after one epoch (4 iterations) of the tiny config."""
    return trained_work_dir / 'epoch_1.pth'


def test_image_demo_gives_the_detections_of_the_test_tool(trained, predictions_dump, tiny_config,
                                                          tiny_coco, tmp_path):
    # predictions_dump: tools/test.py --out with the same checkpoint on the same images
    dumped = {s['img_path'].rsplit('/', 1)[-1]: s['pred_instances']
              for s in pickle.loads(predictions_dump.read_bytes())}
    out_dir = tmp_path / 'demo'
    # a glob of two images, batched, everything saved (a score threshold only affects drawing)
    result = _demo('image_demo.py', f'{tiny_coco}/val/00000[01].png', tiny_config,
                   '--weights', trained, '--out-dir', out_dir, '--device', 'cpu',
                   '--batch-size', 2)
    assert '2 image(s) done' in result.stdout + result.stderr
    for name in ('000000', '000001'):
        assert (out_dir / 'vis' / f'{name}.png').is_file()
        ours = json.loads((out_dir / 'preds' / f'{name}.json').read_text())
        theirs = dumped[f'{name}.png']
        assert len(ours['scores']) == len(theirs['scores']) > 0
        assert ours['labels'] == theirs['labels'].tolist()
        np.testing.assert_allclose(ours['scores'], theirs['scores'].numpy(), atol=1e-5)
        np.testing.assert_allclose(ours['bboxes'], theirs['bboxes'].numpy(), atol=1e-3)
        for rle, other in zip(ours['masks'], theirs['masks']):
            assert rle['size'] == list(other['size'])
            a, b = mask_utils.decode(rle), mask_utils.decode(other)
            assert (a != b).sum() <= 0.01 * max(a.sum(), 1)


def test_image_demo_reads_a_folder_and_a_checkpoint_alone(trained, tiny_coco, tmp_path):
    """MODEL given as the checkpoint only: its config comes from the checkpoint (mmdet's rule)."""
    _demo('image_demo.py', tiny_coco / 'val', trained, '--out-dir', tmp_path, '--device', 'cpu',
          '--no-save-vis')
    assert sorted(p.name for p in (tmp_path / 'preds').iterdir()) == [
        f'{i:06d}.json' for i in range(4)]
    assert not (tmp_path / 'vis').exists()


def test_image_demo_inputs(tmp_path):
    demo = load_tool('demo/image_demo.py')
    collect_inputs, parse_args = demo.collect_inputs, demo.parse_args
    for folder in ('a', 'b'):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / 'x.png').write_bytes(b'')
    (tmp_path / 'a' / 'y.jpg').write_bytes(b'')
    (tmp_path / 'a' / 'notes.txt').write_text('not an image')
    images = [str(tmp_path / 'a' / n) for n in ('x.png', 'y.jpg')]
    assert collect_inputs(str(tmp_path / 'a')) == images  # the suffixes DetInferencer reads
    assert collect_inputs(str(tmp_path / 'a' / '*.*g')) == images
    with pytest.raises(ValueError, match='x.png and .*x.png have the same file name'):
        collect_inputs(str(tmp_path / '*' / 'x.png'))
    # photo.jpg and photo.png would both predict into preds/photo.json
    (tmp_path / 'a' / 'x.jpg').write_bytes(b'')
    with pytest.raises(ValueError, match='x.jpg and .*x.png have the same name without its suffix'):
        collect_inputs(str(tmp_path / 'a'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='holds no image'):
        collect_inputs(str(tmp_path / 'empty'))
    with pytest.raises(FileNotFoundError, match='matches no file'):
        collect_inputs(str(tmp_path / '*.bmp'))
    with pytest.raises(FileNotFoundError, match='no image or folder'):
        collect_inputs(str(tmp_path / 'missing.png'))
    args = parse_args(['img.png', 'model.pth'])  # mmdet's rule: a .pth model is the weights
    assert (args.model, args.weights) == (None, 'model.pth')


def test_video_demo_draws_every_frame(trained, tiny_config, tiny_coco, tmp_path):
    video, out = tmp_path / 'in.mp4', tmp_path / 'out.mp4'
    frame = cv2.imread(str(tiny_coco / 'val' / '000000.png'))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 5,
                             (frame.shape[1], frame.shape[0]))
    for shift in range(6):
        writer.write(np.roll(frame, 4 * shift, axis=1))
    writer.release()
    result = _demo('video_demo.py', video, tiny_config, trained, '--out', out,
                   '--device', 'cpu', '--score-thr', 0.0)
    assert re.search(r'6 frames, detection at [0-9.]+ frames per second', result.stdout)
    drawn = cv2.VideoCapture(str(out))
    assert drawn.get(cv2.CAP_PROP_FRAME_COUNT) == 6 and drawn.get(cv2.CAP_PROP_FPS) == 5
    ok, first = drawn.read()
    assert ok and first.shape == frame.shape
    drawn.release()


def test_image_demo_trust_checkpoint(trained, tiny_config, tmp_path):
    """A checkpoint whose pickle needs more than tensors and plain data is refused, unless the
    user vouches for it (--trust-checkpoint); trust ends with the load."""
    import argparse

    import torch

    from mmdet_dinov2.checkpoints import UnsafeCheckpointError, checkpoints_trusted
    build_inferencer = load_tool('demo/image_demo.py').build_inferencer
    checkpoint = torch.load(trained, map_location='cpu', weights_only=False)
    checkpoint['meta']['options'] = argparse.Namespace(lr=0.1)  # not on the allow-list
    unusual = tmp_path / 'unusual.pth'
    torch.save(checkpoint, unusual)
    with pytest.raises(UnsafeCheckpointError):
        build_inferencer(tiny_config, str(unusual), device='cpu')
    inferencer = build_inferencer(tiny_config, str(unusual), device='cpu', trust=True)
    assert not checkpoints_trusted()
    assert inferencer.model.dataset_meta['classes'] == ('circle', 'triangle', 'rectangle', 'star')
