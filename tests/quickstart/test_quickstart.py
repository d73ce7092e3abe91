"""tools/quickstart.py end to end on a few tiny images: outputs, reuse of a finished run, resume."""
import json
import os
import runpy
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
METRIC_KEYS = ('coco/bbox_mAP', 'coco/segm_mAP', 'wall_seconds')


def quickstart(tmp_path, *extra, force=False, processes=2, epochs=2, check=True):
    """Run the quickstart CLI on 4 train / 2 val images for one-iteration epochs."""
    cmd = [sys.executable, str(REPO / 'tools' / 'quickstart.py'),
           '--data-root', str(tmp_path / 'data'), '--work-dir', str(tmp_path / 'work'),
           '--num-train', '4', '--num-val', '2', '--num-vis', '2', '--epochs', str(epochs),
           '--val-interval', '1', '--processes', str(processes),
           '--cfg-options', 'default_hooks.checkpoint.max_keep_ckpts=2',
           'train_dataloader.batch_size=4',  # one iteration per epoch, shared by the processes
           *extra]
    env = dict(os.environ, FORCE='1' if force else '0')
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr if check else proc


def run_dirs(work):
    return sorted(p.name for p in work.iterdir() if (p / 'vis_data').is_dir())


def train_steps(run_dir):
    lines = (run_dir / 'vis_data' / 'scalars.json').read_text().splitlines()
    return [r['step'] for r in map(json.loads, lines) if 'loss' in r]


@pytest.mark.slow
def test_quickstart_outputs_reuse_and_resume(tmp_path):
    work = tmp_path / 'work'
    out = quickstart(tmp_path)
    metrics = json.loads((work / 'metrics.json').read_text())
    for key in METRIC_KEYS:
        assert isinstance(metrics[key], float), key
    assert 0 <= metrics['coco/bbox_mAP'] <= 1 and 0 <= metrics['coco/segm_mAP'] <= 1
    assert metrics['iterations'] == 2 and metrics['epochs'] == 2
    # two training processes (DistributedDataParallel over gloo), 2 of the 4 images each
    assert 'training in 2 processes' in out and metrics['processes'] == 2
    assert out.count('| bbox |') == 1 and out.count('OpenMP waiting') == 1  # rank 0 alone reports
    # what the timing was measured on, and the per-iteration time of the iterations it ran
    assert metrics['timed_iterations'] == 2 and 0 < metrics['seconds_per_iter'] < metrics['train_seconds']
    machine = metrics['machine']
    assert machine['cpu'] and machine['threads'] >= 1 and machine['aten_isa'] and 'onednn_avx512' in machine
    assert '| bbox |' in out and '| segm |' in out and 'eta:' in out
    vis = sorted((work / 'vis').glob('*.png'))
    assert len(vis) == 2
    for png in vis + [work / 'curves.png']:
        with Image.open(png) as img:
            assert img.format == 'PNG' and min(img.size) >= 256
    with Image.open(vis[0]) as img:  # ground truth | prediction, upscaled for legible labels
        assert img.height >= 512 and img.width == 2 * img.height
    [first_run] = run_dirs(work)
    assert train_steps(work / first_run) == [1, 2]

    # a second invocation reuses the finished run: no training, same metrics
    out = quickstart(tmp_path)
    assert 'reusing the finished run' in out
    assert run_dirs(work) == [first_run]
    assert json.loads((work / 'metrics.json').read_text()) == metrics

    # interrupted after epoch 1: the next invocation resumes from epoch_1.pth and trains epoch 2
    (work / 'metrics.json').unlink()
    (work / 'epoch_2.pth').unlink()
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    out = quickstart(tmp_path)
    assert 'resumed epoch: 1' in out
    second_run = next(d for d in run_dirs(work) if d != first_run)
    assert train_steps(work / second_run) == [2]
    resumed = json.loads((work / 'metrics.json').read_text())
    assert resumed['iterations'] == 2 and resumed['timed_iterations'] == 1  # only this process's


@pytest.mark.slow
def test_quickstart_in_one_process(tmp_path):
    out = quickstart(tmp_path, processes=1, epochs=1)
    metrics = json.loads((tmp_path / 'work' / 'metrics.json').read_text())
    assert 'training in' not in out and '| bbox |' in out
    assert metrics['processes'] == 1 and metrics['iterations'] == 1 and metrics['timed_iterations'] == 1


def test_processes_must_share_the_batch_evenly(tmp_path):
    proc = quickstart(tmp_path, processes=3, check=False)
    assert proc.returncode != 0 and '--processes 3 must divide the batch size (4)' in proc.stderr
    assert not (tmp_path / 'data').exists()  # refused before generating anything


@pytest.mark.slow
def test_quickstart_refuses_changed_settings_without_force(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'quickstart_settings.json').write_text(json.dumps(dict(num_train=999)))
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'quickstart.py'), '--work-dir', str(work),
         '--data-root', str(tmp_path / 'data'), '--num-train', '4', '--num-val', '2'],
        cwd=tmp_path, env=dict(os.environ, FORCE='0'), capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'other settings' in proc.stderr and 'FORCE=1' in proc.stderr
    assert not (tmp_path / 'data').exists()  # refused before generating anything


def test_config_matches_the_generator_and_keeps_the_real_code_path(shapes_tool):
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / 'configs' / 'quickstart' /
                              'mask-rcnn_vit-adapter-tiny_fpn_shapes.py'))
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert tuple(loader.dataset.metainfo['classes']) == shapes_tool.CLASSES
    n_classes = len(shapes_tool.CLASSES)
    assert cfg.model.roi_head.bbox_head.num_classes == n_classes
    assert cfg.model.roi_head.mask_head.num_classes == n_classes
    assert cfg.model.backbone.type == 'ViTAdapter' and cfg.model.backbone.pretrained is None
    assert len(cfg.model.backbone.interaction_indexes) >= 2
    assert cfg.model.neck.in_channels == [cfg.model.backbone.embed_dim] * 4
    assert cfg.optim_wrapper.constructor == 'LayerDecayOptimizerConstructor'
    assert cfg.optim_wrapper.paramwise_cfg.num_layers == cfg.model.backbone.depth
    assert cfg.val_evaluator.type == 'CocoMetric'
    assert set(cfg.val_evaluator.metric) == {'bbox', 'segm'}
    assert cfg.img_size % 32 == 0
    assert cfg.train_dataloader.batch_size % 2 == 0  # split over the quickstart's 2 processes


@pytest.mark.parametrize('user_env, want', [
    ({}, None),  # chosen by how busy the CPU is: one of the two settings
    ({'OMP_WAIT_POLICY': 'ACTIVE'}, {'OMP_WAIT_POLICY': 'ACTIVE'}),
    ({'GOMP_SPINCOUNT': '5'}, {'GOMP_SPINCOUNT': '5'}),
])
def test_openmp_waiting_is_set_before_torch_unless_the_user_did(user_env, want):
    # the environment as it is when quickstart.py first imports torch (the import is stopped there)
    code = ('import json, os, runpy, sys\n'
            'class Stop(Exception):\n    pass\n'
            'class AtTorch:\n'
            '    def find_spec(self, name, path=None, target=None):\n'
            '        if name == "torch":\n'
            '            print(json.dumps({k: os.environ[k] for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") '
            'if k in os.environ}))\n'
            '            raise Stop\n'
            'sys.meta_path.insert(0, AtTorch())\n'
            'try:\n'
            f'    runpy.run_path({str(REPO / "tools" / "quickstart.py")!r}, run_name="not_main")\n'
            'except Stop:\n    pass\n'
            'else:\n    sys.exit("quickstart.py never imported torch")\n')
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT')}
    proc = subprocess.run([sys.executable, '-c', code], env={**env, **user_env}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got in ([{'OMP_WAIT_POLICY': 'PASSIVE'}, {'GOMP_SPINCOUNT': '1000'}] if want is None else [want])


@pytest.mark.skipif(not Path('/proc/stat').exists(), reason='reads /proc/stat (Linux)')
def test_busy_cores_sees_a_spinning_process():
    qs = runpy.run_path(str(REPO / 'tools' / 'quickstart.py'), run_name='not_main')
    spinner = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    try:
        time.sleep(0.3)
        busy = qs['busy_cores'](1.0)
    finally:
        spinner.kill()
    assert 0.7 <= busy <= (os.cpu_count() or 1) + 0.01
    assert qs['openmp_waiting'](busy) == {'OMP_WAIT_POLICY': 'PASSIVE'}
    assert qs['openmp_waiting'](0.1) == {'GOMP_SPINCOUNT': '1000'}
