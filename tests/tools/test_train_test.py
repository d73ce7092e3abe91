"""tools/dist_train.sh (two CPU processes), tools/train.py and tools/test.py end to end, with the
tiny config on a generated COCO-format dataset; the AP that tools/test.py reports is checked
against pycocotools' COCOeval run directly on the predictions it dumped."""
import json
import pickle
import shutil
import socket

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

pytestmark = pytest.mark.slow
METRICS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')  # COCOeval.stats[0:6]


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _logged_metrics(work_dir):
    """The last evaluation an mmengine run logged: ``<timestamp>/<timestamp>.json`` (test) or
    ``<timestamp>/vis_data/<timestamp>.json`` (training)."""
    paths = sorted(work_dir.glob('*/*.json')) + sorted(work_dir.glob('*/vis_data/2*.json'))
    records = [json.loads(line) for path in paths
               for line in path.read_text().splitlines() if 'coco/bbox_mAP' in line]
    assert records, f'no evaluation logged in {work_dir}'
    return records[-1]


@pytest.fixture(scope='module')
def dist_run(tmp_path_factory, tiny_config, tiny_coco, tool):
    """Two epochs with two CPU processes under torchrun (gloo, DDP without device ids); a rank
    that dies of a signal prints its Python stack (PYTHONFAULTHANDLER)."""
    work_dir = tmp_path_factory.mktemp('dist_train')
    result = tool('dist_train.sh', tiny_config, 2, '--work-dir', work_dir, data=tiny_coco,
                  env=dict(PORT=str(_free_port()), PYTHONFAULTHANDLER='1'))
    return work_dir, result.stdout + result.stderr


def test_dist_train_runs_two_processes_on_cpu(dist_run):
    work_dir, output = dist_run
    assert 'Distributed training: True' in output and 'GPU number: 2' in output
    log = next(work_dir.glob('*/*.log')).read_text()
    assert 'LayerDecayOptimizerConstructor: num_layers=2, layer_decay_rate=0.7' in log
    if not torch.cuda.is_available():
        assert 'no CUDA: model_wrapper_cfg: DistributedDataParallel with device_ids=None' in log
        assert 'SyncBN norm config(s) -> BN' in log and '+ SyncBuffersHook' in log
    assert (work_dir / 'epoch_2.pth').is_file() and (work_dir / 'last_checkpoint').is_file()
    # 8 images, 2 processes x 2 images: 2 iterations an epoch
    train_lines = [json.loads(line) for line in next(work_dir.glob('*/vis_data/scalars.json'))
                   .read_text().splitlines() if '"loss"' in line]
    assert [r['iter'] for r in train_lines] == [1, 2, 3, 4]
    assert 'coco/segm_mAP' in _logged_metrics(work_dir)


def _cocoeval(ann_file, predictions, classes, iou_type):
    """COCO AP of dumped predictions, straight from pycocotools (no mmdet code)."""
    gt = COCO(str(ann_file))
    cat_id = {c['name']: c['id'] for c in gt.dataset['categories']}
    results = []
    for sample in predictions:
        pred = sample['pred_instances']
        for i, (box, score, label) in enumerate(zip(pred['bboxes'].tolist(),
                                                     pred['scores'].tolist(),
                                                     pred['labels'].tolist())):
            result = dict(image_id=sample['img_id'], category_id=cat_id[classes[label]],
                          score=score)
            if iou_type == 'bbox':
                x1, y1, x2, y2 = box
                result['bbox'] = [x1, y1, x2 - x1, y2 - y1]
            else:  # no 'bbox' key: loadRes then takes the mask's area for APs/APm/APl
                rle = dict(pred['masks'][i])
                if isinstance(rle['counts'], bytes):
                    rle['counts'] = rle['counts'].decode()
                result['segmentation'] = rle
            results.append(result)
    evaluator = COCOeval(gt, gt.loadRes(results), iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator.stats[:6]


def test_test_tool_ap_equals_cocoeval_on_its_dump(dist_run, tiny_config, tiny_coco, tool, classes,
                                                   tmp_path):
    train_dir, _ = dist_run
    pkl = tmp_path / 'predictions.pkl'
    result = tool('test.py', tiny_config, train_dir / 'epoch_2.pth', '--work-dir', tmp_path,
                  '--out', pkl, '--show-dir', tmp_path / 'vis', data=tiny_coco)
    output = result.stdout + result.stderr
    assert "Loaded 240 of the model's 240 tensors (0 missing, 0 unexpected)" in output
    for kind in ('bbox', 'segm'):
        assert f'{kind}_mAP_copypaste' in output
    reported = _logged_metrics(tmp_path)
    predictions = pickle.loads(pkl.read_bytes())
    assert len(predictions) == 4 and len(list((tmp_path / 'vis').glob('*.png'))) == 4
    ann_file = tiny_coco / 'annotations' / 'instances_val.json'
    for kind in ('bbox', 'segm'):
        stats = _cocoeval(ann_file, predictions, classes, kind)
        ours = [reported[f'coco/{kind}_{m}'] for m in METRICS]
        # CocoMetric rounds to 3 decimals
        assert np.allclose(ours, np.round(stats, 3), atol=1.01e-3), (kind, ours, stats)
    assert reported['coco/bbox_mAP_50'] > 0  # a comparison of real numbers, not of zeros


def test_dist_test_in_two_processes_matches_the_training_validation(dist_run, tiny_config, tiny_coco,
                                                                   tool, tmp_path):
    """tools/dist_test.sh: each rank predicts half the images; the gathered dump holds every image
    once and the metrics are those the 2-process training logged for the same weights."""
    train_dir, _ = dist_run
    pkl = tmp_path / 'predictions.pkl'
    tool('dist_test.sh', tiny_config, train_dir / 'epoch_2.pth', 2, '--work-dir', tmp_path,
         '--out', pkl, data=tiny_coco, env=dict(PORT=str(_free_port()), PYTHONFAULTHANDLER='1'))
    val_ids = [img['id'] for img in
               json.loads((tiny_coco / 'annotations' / 'instances_val.json').read_text())['images']]
    assert sorted(sample['img_id'] for sample in pickle.loads(pkl.read_bytes())) == sorted(val_ids)
    trained, tested = _logged_metrics(train_dir), _logged_metrics(tmp_path)
    assert {k: tested[k] for k in trained if k.startswith('coco/')} == {
        k: v for k, v in trained.items() if k.startswith('coco/')}


def test_sweep_summary_reads_a_real_work_dir(dist_run, tool):
    work_dir, _ = dist_run
    out = tool('analysis_tools/sweep_summary.py', work_dir).stdout
    box = 100 * _logged_metrics(work_dir)['coco/bbox_mAP']
    assert f'| 0.70 | {box:.1f} |' in out


def test_train_tool_single_process_and_resume(trained_work_dir, tiny_config, tiny_coco, tool,
                                              tmp_path):
    # trained_work_dir: tools/train.py in one process, one epoch; resumed here in a copy
    shutil.copytree(trained_work_dir, tmp_path, dirs_exist_ok=True)
    assert (tmp_path / 'epoch_1.pth').is_file()
    result = tool('train.py', tiny_config, '--work-dir', tmp_path, '--resume', '--cfg-options',
                  'train_cfg.max_epochs=2', data=tiny_coco)
    assert 'resumed epoch: 1' in (result.stdout + result.stderr)
    assert (tmp_path / 'epoch_2.pth').is_file()

