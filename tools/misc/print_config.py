"""Print a config as mmdet reads it, bases merged (mmdet's tools/misc/print_config.py, its
arguments).

    python tools/misc/print_config.py CONFIG [--cfg-options K=V ...] [--save-path FILE.py]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'analysis_tools'))
from mmdet_tools import run_mmdet_tool  # noqa: E402

if __name__ == '__main__':
    run_mmdet_tool('misc/print_config.py')
