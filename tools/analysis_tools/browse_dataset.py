"""Draw the training set's images with their annotations, after the train pipeline
(mmdet's tools/analysis_tools/browse_dataset.py, its arguments).

    python tools/analysis_tools/browse_dataset.py CONFIG [--output-dir DIR] [--not-show]
        [--show-interval S] [--cfg-options K=V ...]
"""
from mmdet_tools import run_mmdet_tool

if __name__ == '__main__':
    run_mmdet_tool('analysis_tools/browse_dataset.py')
