"""Plot training curves or the time per iteration from a run's JSON log (mmdet's
tools/analysis_tools/analyze_logs.py, its arguments).

    python tools/analysis_tools/analyze_logs.py plot_curve LOG.json [LOG.json ...]
        [--keys loss bbox_mAP] [--legend ...] [--out curves.png] [--style default]
    python tools/analysis_tools/analyze_logs.py cal_train_time LOG.json

LOG.json: a training run's WORK_DIR/TIMESTAMP/vis_data/TIMESTAMP.json (validation keys without
their ``coco/`` prefix: ``bbox_mAP``, ``segm_mAP_50``, ...).

mmdet's default ``--style dark`` is a seaborn style that matplotlib alone does not have: without
``--style`` this uses matplotlib's ``default``.
"""
import sys

from mmdet_tools import run_mmdet_tool

if __name__ == '__main__':
    plot = sys.argv[1:2] == ['plot_curve']
    run_mmdet_tool('analysis_tools/analyze_logs.py',
                   defaults=[('--style', 'default')] if plot else ())
