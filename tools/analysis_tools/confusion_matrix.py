"""Confusion matrix of a tools/test.py --out dump against the test set's annotations
(mmdet's tools/analysis_tools/confusion_matrix.py, its arguments).

    python tools/analysis_tools/confusion_matrix.py CONFIG PREDICTIONS.pkl SAVE_DIR
        [--score-thr 0.3] [--tp-iou-thr 0.5] [--show] [--cfg-options K=V ...]
"""
from mmdet_tools import run_mmdet_tool

if __name__ == '__main__':
    run_mmdet_tool('analysis_tools/confusion_matrix.py')
