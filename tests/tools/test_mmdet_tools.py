"""mmdet's own analysis tools through the wrappers under tools/ (browse_dataset, analyze_logs,
confusion_matrix, analyze_results, print_config), on the tiny config and a tools/test.py --out
dump; and tools/test.py's mmdet options --show / --wait-time / --show-score-thr / --tta. The
wrappers run in this process as scripts (tool_in_process): their output and files are checked."""
import pickle

import pytest
from mmengine.config import Config

from tests.helpers import load_tool

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def trained(trained_work_dir):
    """A work dir after one epoch (4 iterations, then validation) of the tiny config."""
    return trained_work_dir


@pytest.fixture(scope='module')
def checkpoint(trained):
    return trained / 'epoch_1.pth'


def test_browse_dataset(tiny_config, tiny_coco, tool_in_process, tmp_path):
    tool_in_process('analysis_tools/browse_dataset.py', tiny_config, '--output-dir', tmp_path,
                    '--not-show', data=tiny_coco)
    assert len(list(tmp_path.glob('*.png'))) == 8  # the training images, annotations drawn


def test_confusion_matrix_and_analyze_results_read_the_test_dump(predictions_dump, tiny_config,
                                                                 tiny_coco, tool_in_process,
                                                                 tmp_path):
    tool_in_process('analysis_tools/confusion_matrix.py', tiny_config, predictions_dump,
                    tmp_path / 'cm', data=tiny_coco)
    assert (tmp_path / 'cm' / 'confusion_matrix.png').is_file()
    tool_in_process('analysis_tools/analyze_results.py', tiny_config, predictions_dump,
                    tmp_path / 'ar', '--topk', 2, data=tiny_coco)
    assert len(list((tmp_path / 'ar' / 'good').glob('*.png'))) == 2
    assert len(list((tmp_path / 'ar' / 'bad').glob('*.png'))) == 2


def test_analyze_logs_and_print_config(trained, tiny_config, tool_in_process, tmp_path):
    log = next(trained.glob('2*/vis_data/2*.json'))
    # no --style: matplotlib's default instead of mmdet's default, seaborn's 'dark'
    tool_in_process('analysis_tools/analyze_logs.py', 'plot_curve', log, '--keys', 'loss',
                    'bbox_mAP', '--out', tmp_path / 'curves.png')
    assert (tmp_path / 'curves.png').is_file()
    out = tool_in_process('analysis_tools/analyze_logs.py', 'cal_train_time', log)
    assert 'average iter time' in out
    out = tool_in_process('misc/print_config.py', tiny_config)
    assert "type='ViTAdapter'" in out and "custom_imports" in out


def test_wrappers_refuse_data_root(tiny_config):
    tools = load_tool('tools/analysis_tools/mmdet_tools.py')
    assert tools.data_root_option(['CFG', '--cfg-options', 'a=1', 'data_root=/d']) == 'data_root=/d'
    assert tools.data_root_option(['CFG', '--out-dir', 'data_root=/d']) is None
    with pytest.raises(SystemExit, match='train_dataloader.dataset.data_root=DIR/'):
        tools.run_mmdet_tool('misc/print_config.py',
                             [tiny_config, '--cfg-options', 'data_root=/data/mine'])


def test_test_tool_tta_show_dir_and_score_threshold(checkpoint, tiny_config, tiny_coco, tool,
                                                    tmp_path):
    pkl = tmp_path / 'tta.pkl'
    result = tool('test.py', tiny_config, checkpoint, '--work-dir', tmp_path, '--tta',
                  '--out', pkl, '--show-dir', tmp_path / 'vis', '--show-score-thr', 0.5,
                  data=tiny_coco)
    output = result.stdout + result.stderr
    # the whole detector checkpoint loads into the TTA model, mask head included
    assert "Loaded 240 of the model's 240 tensors (0 missing, 0 unexpected)" in output
    assert 'bbox_mAP_copypaste' in output and 'segm_mAP_copypaste' not in output
    predictions = pickle.loads(pkl.read_bytes())
    assert len(predictions) == 4 and 'masks' not in predictions[0]['pred_instances']
    assert len(list((tmp_path / 'vis').glob('*.png'))) == 4
    hook = Config.fromfile(tmp_path / 'tiny_config.py').default_hooks.visualization  # as run
    assert hook.score_thr == 0.5 and hook.draw is True


def test_test_tool_show_options_reach_the_visualization_hook(tiny_config, tmp_path):
    test = load_tool('tools/test.py')
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')
    args = test.parse_args([tiny_config, str(ckpt), '--show', '--wait-time', '0.5',
                            '--show-score-thr', '0.2'])
    cfg = Config.fromfile(tiny_config)
    test.apply_args(cfg, args)
    hook = cfg.default_hooks.visualization
    assert (hook.draw, hook.show, hook.wait_time, hook.score_thr) == (True, True, 0.5, 0.2)
