"""Draw the test images of best and worst AP in a tools/test.py --out dump (SHOW_DIR/good,
SHOW_DIR/bad; mmdet's tools/analysis_tools/analyze_results.py, its arguments).

    python tools/analysis_tools/analyze_results.py CONFIG PREDICTIONS.pkl SHOW_DIR [--topk 20]
        [--show-score-thr 0] [--cfg-options K=V ...]
"""
from mmdet_tools import run_mmdet_tool

if __name__ == '__main__':
    run_mmdet_tool('analysis_tools/analyze_results.py')
