"""Reading mmengine's scalar logs across resumed runs, and drawing them."""
import json

import pytest
from PIL import Image


def write_scalars(work_dir, timestamp, records):
    path = work_dir / timestamp / 'vis_data' / 'scalars.json'
    path.parent.mkdir(parents=True)
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))


def test_resumed_runs_merge_and_later_records_win(curves_tool, tmp_path):
    write_scalars(tmp_path, '20250101_000000', [
        dict(loss=3.0, loss_mask=1.0, step=10), dict(loss=2.0, loss_mask=0.8, step=20),
        {'coco/bbox_mAP': 0.1, 'coco/segm_mAP': 0.05, 'step': 1},
        dict(loss=9.9, loss_mask=9.9, step=30)])  # interrupted: this iteration is redone
    write_scalars(tmp_path, '20250101_010000', [
        dict(loss=1.5, loss_mask=0.5, step=30),
        {'coco/bbox_mAP': 0.3, 'coco/segm_mAP': 0.2, 'coco/bbox_mAP_copypaste': '0.3 ...',
         'step': 2}])
    train, val = curves_tool.read_scalars(tmp_path)
    assert [(r['step'], r['loss']) for r in train] == [(10, 3.0), (20, 2.0), (30, 1.5)]
    assert [(r['step'], r['coco/bbox_mAP']) for r in val] == [(1, 0.1), (2, 0.3)]

    out = curves_tool.plot_curves(tmp_path, tmp_path / 'plots' / 'curves.png')
    with Image.open(out) as img:
        assert img.format == 'PNG' and img.width > img.height > 100


def test_no_training_records_is_a_clear_error(curves_tool, tmp_path):
    with pytest.raises(FileNotFoundError, match='no training records'):
        curves_tool.plot_curves(tmp_path, tmp_path / 'curves.png')
