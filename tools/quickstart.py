"""Quickstart (`make demo`): train, evaluate and draw a tiny DINOv2 ViT-Adapter Mask R-CNN on CPU.

1. generates the shapes dataset (tools/misc/make_shapes_dataset.py) unless it is already there;
2. trains configs/quickstart/mask-rcnn_vit-adapter-tiny_fpn_shapes.py with mmengine's Runner: the
   real code path (ViTAdapter with interaction blocks, FPN, Mask R-CNN heads, layer-wise lr decay,
   CocoMetric), only smaller; in two single-threaded processes under torchrun where there are two
   cores or more (see default_processes); the log prints progress with an ETA;
3. prints the COCO box and mask AP table of the last validation and writes WORK_DIR/metrics.json;
4. draws predictions beside the ground truth for a few val images (WORK_DIR/vis/*.png) and the loss
   and AP curves (WORK_DIR/curves.png).

Running it again reuses the dataset and a finished run (it prints the table again); an interrupted
run resumes from its last checkpoint. FORCE=1 in the environment trains again from scratch.

Usage::

    python tools/quickstart.py [--epochs N] [--num-train N] [--num-val N] [--work-dir DIR] ...
"""
import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path


def busy_cores(seconds: float = 0.5) -> float:
    """How many cores other processes keep busy now: /proc/stat over ``seconds`` (Linux), else the
    1-minute load average (which lags: it still counts a job that just ended)."""
    def snapshot():
        with open('/proc/stat') as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # all, idle + iowait

    try:
        total0, idle0 = snapshot()
        time.sleep(seconds)
        total1, idle1 = snapshot()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] if hasattr(os, 'getloadavg') else 0.0
    return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / max(total1 - total0, 1))


def openmp_waiting(busy: float) -> dict:
    """How OpenMP threads idle between parallel regions, given the cores other processes keep busy.

    A thread that finishes a region first waits for the next one. On a quiet machine a short spin
    (GOMP_SPINCOUNT) keeps 2-thread steps fast; when other processes keep a core busy, spinning
    threads fight them for the CPU, so they sleep at once (OMP_WAIT_POLICY=PASSIVE).
    Trained quickstart model on the 2-core machine, s/iter: quiet: passive 0.32, spin 1000 0.23;
    beside one busy process: passive 0.40, spin 1000 0.51, libgomp's default 0.68.
    """
    return {'OMP_WAIT_POLICY': 'PASSIVE'} if busy > 0.5 else {'GOMP_SPINCOUNT': '1000'}


# before torch loads OpenMP; the user's own settings win
if not {'OMP_WAIT_POLICY', 'GOMP_SPINCOUNT'} & set(os.environ):
    os.environ.update(openmp_waiting(busy_cores()))

REPO = Path(__file__).resolve().parents[1]
# when this run started (wall_seconds counts from here); training processes inherit their parent's
START = float(os.environ.get('QUICKSTART_START', time.time()))
sys.path[:0] = [str(REPO / 'tools'), str(REPO)]  # the helper tools below; the package, uninstalled

from analysis_tools.plot_curves import plot_curves  # noqa: E402
from misc.make_shapes_dataset import make_shapes_dataset  # noqa: E402
from misc.visualize_predictions import draw_predictions  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.dist import is_main_process  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.model import is_model_wrapper  # noqa: E402

from mmdet_dinov2.engine.launch import build_runner, close_process_group  # noqa: E402
from mmdet_dinov2.utils import atomic_open, machine_info  # noqa: E402

DEFAULT_CONFIG = REPO / 'configs' / 'quickstart' / 'mask-rcnn_vit-adapter-tiny_fpn_shapes.py'
SETTINGS_FILE = 'quickstart_settings.json'
METRICS_FILE = 'metrics.json'
AP_COLUMNS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')


class LastValMetrics(Hook):
    """Keeps the metrics of the latest validation and the epoch it ran after."""

    def __init__(self):
        self.metrics, self.epoch = None, None

    def after_val_epoch(self, runner, metrics=None):
        self.metrics, self.epoch = metrics, runner.epoch


class TrainIterTimes(Hook):
    """Seconds of each training iteration (data loading included) of this process."""

    def __init__(self):
        self.seconds, self._start = [], None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.seconds.append(time.perf_counter() - self._start)


def default_processes():
    """Two training processes on two cores or more, else one.

    The tiny model runs many small operations, which two threads of one process share worse than two
    single-threaded processes (DistributedDataParallel over gloo, half the images each); single
    threads also never wait on each other (see openmp_waiting). docs/benchmarks.md has the timings.
    """
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=str(DEFAULT_CONFIG))
    parser.add_argument('--work-dir', default='work_dirs/quickstart')
    parser.add_argument('--data-root', default='data/shapes',
                        help='where the shapes dataset is (or is generated)')
    parser.add_argument('--num-train', type=int, default=300, help='training images to generate')
    parser.add_argument('--num-val', type=int, default=100, help='validation images to generate')
    parser.add_argument('--epochs', type=int, help='training epochs (default: the config\'s)')
    parser.add_argument('--val-interval', type=int, help='validate every N epochs (default: the '
                        'config\'s); the last epoch is always validated')
    parser.add_argument('--num-vis', type=int, default=4, help='val images to draw')
    parser.add_argument('--seed', type=int, default=0, help='dataset and training seed')
    parser.add_argument('--processes', type=int, default=default_processes(),
                        help='training processes, each with an equal share of the batch and of the '
                        'cores (default: 2 where there are 2 cores or more, else 1)')
    parser.add_argument('--rank-worker', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config settings, key=value (mmengine syntax)')
    return parser.parse_args(argv)


def set_epochs(cfg, epochs):
    """Change the schedule's length, stretching the by-epoch lr schedulers with it."""
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs
    for scheduler in cfg.param_scheduler:
        if not scheduler.get('by_epoch', True):
            continue
        for key in ('end', 'T_max'):
            if key in scheduler:
                scheduler[key] = max(1, round(scheduler[key] * epochs / old))
        if 'milestones' in scheduler:
            scheduler['milestones'] = [max(1, round(m * epochs / old))
                                       for m in scheduler['milestones']]


def build_config(args):
    """The quickstart config with the command line's data, schedule and work dir."""
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    data_root = str(Path(args.data_root).resolve()) + '/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg[evaluator].ann_file = data_root + 'annotations/instances_val.json'
    if args.epochs is not None:
        set_epochs(cfg, args.epochs)
    if args.val_interval is not None:
        cfg.train_cfg.val_interval = args.val_interval
    if args.processes < 1 or cfg.train_dataloader.batch_size % args.processes:
        sys.exit(f'quickstart: --processes {args.processes} must divide the batch size '
                 f'({cfg.train_dataloader.batch_size}), which the processes share')
    cfg.train_dataloader.batch_size //= args.processes  # the same 4 images an iteration in all
    cfg.launcher = 'pytorch' if args.processes > 1 else 'none'
    cfg.randomness = dict(seed=args.seed)
    cfg.work_dir = str(Path(args.work_dir).resolve())
    cfg.resume = 'if_exists'  # picks up WORK_DIR/last_checkpoint when there is one
    return cfg


def run_settings(args, cfg):
    """What a finished run in the work dir must match to be reused."""
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
    return dict(config=str(Path(args.config).resolve()),
                config_sha256=hashlib.sha256(text.encode()).hexdigest(),
                num_train=args.num_train, num_val=args.num_val, seed=args.seed,
                img_size=cfg.img_size, processes=args.processes)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_json(path, obj):
    """Write atomically: a reader never sees half a file."""
    with atomic_open(path, 'w') as f:
        json.dump(obj, f, indent=1)


def prepare_work_dir(work_dir, settings, force):
    """Empty the work dir for FORCE=1, or check that a run in it was made with the same settings."""
    old = read_json(work_dir / SETTINGS_FILE)
    if work_dir.exists() and any(work_dir.iterdir()) and old is None:
        sys.exit(f'quickstart: {work_dir} is not empty and holds no {SETTINGS_FILE}: it is not a '
                 f'quickstart work dir. Choose another --work-dir.')
    if force and work_dir.exists():
        print(f'FORCE=1: removing the previous run in {work_dir}')
        shutil.rmtree(work_dir)
    elif old is not None and old != settings:
        changed = sorted(k for k in settings if old.get(k) != settings[k])
        sys.exit(f'quickstart: {work_dir} holds a run made with other settings ({", ".join(changed)}'
                 f' differ). Run with FORCE=1 to train again from scratch there, or choose another '
                 f'--work-dir.')
    work_dir.mkdir(parents=True, exist_ok=True)
    write_json(work_dir / SETTINGS_FILE, settings)


def ap_table(metrics):
    """COCO AP of boxes and masks as a Markdown table (AP in %)."""
    lines = ['| ' + ' | '.join(('AP [%]',) + AP_COLUMNS) + ' |',
             '|' + '---|' * (len(AP_COLUMNS) + 1)]
    for kind in ('bbox', 'segm'):
        values = [metrics.get(f'coco/{kind}_{col}', -1.0) for col in AP_COLUMNS]
        # COCO reports -1 for a size range without objects (no shape is above 96x96 pixels)
        cells = ['n/a' if v < 0 else f'{100 * v:.1f}' for v in values]
        lines.append(f'| {kind} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def train_and_evaluate(cfg):
    """Train (resuming if a checkpoint is there) and return the final validation metrics."""
    cfg.lock_work_dir_at_build = True  # as tools/train.py does
    runner = build_runner(cfg)
    last_val, iter_times = LastValMetrics(), TrainIterTimes()
    runner.register_hook(last_val, priority='LOWEST')
    runner.register_hook(iter_times, priority='HIGHEST')
    runner.train()
    metrics = last_val.metrics
    if last_val.epoch != cfg.train_cfg.max_epochs:  # resumed after the last epoch's checkpoint
        metrics = runner.val()
    return runner, metrics, iter_times.seconds


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def launch_processes(args, argv):
    """Run the training (and what follows it) in args.processes processes under torchrun, each with
    its share of the cores; rank 0 writes metrics.json. Exits when one fails."""
    env = dict(os.environ, QUICKSTART_START=str(START))
    env.setdefault('OMP_NUM_THREADS', str(max(1, (os.cpu_count() or 1) // args.processes)))
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO), env.get('PYTHONPATH')]))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nnodes=1',
           f'--nproc_per_node={args.processes}', '--master_addr=127.0.0.1',
           f'--master_port={free_port()}', __file__, *argv, '--rank-worker']
    print(f'quickstart: training in {args.processes} processes of {env["OMP_NUM_THREADS"]} '
          f'thread(s) each (--processes 1 for one)', flush=True)
    code = subprocess.call(cmd, env=env)
    if code:
        sys.exit(f'quickstart: the training processes failed (exit code {code}); the log above '
                 f'says why. Run again to resume from the last checkpoint.')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    cfg = build_config(args)
    work_dir = Path(cfg.work_dir)
    settings = run_settings(args, cfg)
    if args.rank_worker:  # one of launch_processes' processes: the parent prepared everything
        return train_draw_and_report(args, cfg, settings)
    prepare_work_dir(work_dir, settings, force=os.environ.get('FORCE', '0') not in ('', '0'))

    done = read_json(work_dir / METRICS_FILE)
    if done is not None and done.get('settings') == settings:
        print(f'quickstart: reusing the finished run in {work_dir} (FORCE=1 to train again); '
              f'it took {done["wall_seconds"]:.0f} s')
        print(ap_table(done))
        return done

    _, made = make_shapes_dataset(args.data_root, args.num_train, args.num_val, cfg.img_size,
                                  args.seed)
    print(f'quickstart: {"generated" if made else "reusing"} the shapes dataset in '
          f'{args.data_root}')
    if args.processes == 1:
        return train_draw_and_report(args, cfg, settings)
    launch_processes(args, argv)
    return read_json(work_dir / METRICS_FILE)


def train_draw_and_report(args, cfg, settings):
    """Train and evaluate; then rank 0 draws, writes metrics.json and prints the AP table."""
    work_dir = Path(cfg.work_dir)
    waiting = {k: os.environ[k] for k in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT') if k in os.environ}
    if not args.rank_worker or os.environ.get('RANK') == '0':
        print(f'quickstart: OpenMP waiting {waiting or "default"} (see openmp_waiting in {__file__})')
    train_start = time.time()
    runner, metrics, iter_seconds = train_and_evaluate(cfg)
    train_seconds = time.time() - train_start
    main_process = is_main_process()  # (without a process group every process would say so)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    val_dataset, iterations = runner.val_dataloader.dataset, runner.iter
    del runner  # close_process_group frees the group with the runner's DDP wrapper
    close_process_group()
    if not main_process:
        return None

    vis = draw_predictions(model, val_dataset, work_dir / 'vis', args.num_vis, score_thr=0.5)
    curves = plot_curves(work_dir, work_dir / 'curves.png')
    result = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    result.update(wall_seconds=round(time.time() - START, 1),
                  train_seconds=round(train_seconds, 1), epochs=cfg.train_cfg.max_epochs,
                  iterations=iterations, settings=settings,
                  # this process's training iterations (all of them unless it resumed), each of
                  # --processes processes with machine['threads'] threads
                  seconds_per_iter=round(statistics.median(iter_seconds), 4) if iter_seconds else None,
                  timed_iterations=len(iter_seconds), processes=args.processes,
                  machine=machine_info())
    write_json(work_dir / METRICS_FILE, result)

    print(f'\nCOCO AP on {args.num_val} val images after {iterations} iterations '
          f'({result["wall_seconds"]:.0f} s):')
    print(ap_table(result))
    print(f'metrics: {work_dir / METRICS_FILE}\ncurves:  {curves}\npredictions: '
          f'{", ".join(str(p) for p in vis)}')
    return result


if __name__ == '__main__':
    main()
