"""Evaluate a detector checkpoint on the config's test set (mmdet 3.x tools/test.py behaviour).

    python tools/test.py CONFIG CHECKPOINT [--out PKL] [--show-dir DIR] [--work-dir DIR]
        [--trust-checkpoint] [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm|mpi]

Prints box and mask AP (AP, AP50, AP75, APs, APm, APl) through mmdet's CocoMetric. CHECKPOINT is
read with the safe (weights-only) loader; checkpoints of the original ViT-Adapter (mmdet 2.x)
load as they are. Several processes: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [ARGS].
"""
import argparse
import os
import os.path as osp
import tempfile

from mmengine.config import DictAction

from mmdet_dinov2.checkpoints.remote import is_url
from mmdet_dinov2.engine.launch import build_runner, close_process_group, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump the predictions to this pickle file (.pkl)')
    parser.add_argument('--show-dir', help='save images with predictions drawn to this dir '
                                           '(relative paths go under WORK_DIR/<timestamp>/)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load checkpoints whose pickle needs more than tensors and plain '
                             'data (it may run code): only for files you trust')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, KEY=VALUE')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out {args.out}: the predictions are dumped as a pickle, give a .pkl path')
    if args.out is not None:
        reason = unwritable_reason(args.out)
        if reason:  # else the evaluation runs to its end and only then fails to dump
            parser.error(f'--out {args.out}: cannot write the predictions there: {reason}')
    return args


def unwritable_reason(path):
    """Why the file ``path`` could not be written, or None if it can.

    Missing folders are fine when they can be created (the dump creates them): the nearest
    existing ancestor must be a folder that accepts a new file, which is tried for real (as root,
    permission bits alone say little) with a probe file that is removed at once.
    """
    path = osp.abspath(path)
    if osp.isdir(path):
        return 'it is a directory'
    folder = osp.dirname(path)
    while not osp.lexists(folder):
        folder = osp.dirname(folder)
    if not osp.isdir(folder):
        return f'{folder} is not a directory'
    if not os.access(folder, os.W_OK | os.X_OK):
        return f'no permission to create files in {folder}'
    try:
        fd, probe = tempfile.mkstemp(prefix='.out-probe.', dir=folder)
    except OSError as err:
        return f'cannot create files in {folder} ({err.strerror or err})'
    os.close(fd)
    os.remove(probe)
    return None


def apply_args(cfg, args):
    """Point the config at the checkpoint and add --out / --show-dir."""
    if not (is_url(args.checkpoint) or osp.isfile(args.checkpoint)):
        raise FileNotFoundError(f'checkpoint file not found: {args.checkpoint}')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show_dir:
        if 'visualization' not in cfg.default_hooks:
            raise ValueError('--show-dir needs default_hooks.visualization in the config')
        cfg.default_hooks.visualization.update(draw=True, test_out_dir=args.show_dir)
    if args.out:
        evaluators = cfg.test_evaluator
        evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
        cfg.test_evaluator = evaluators + [dict(type='DumpDetResults', out_file_path=args.out)]


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher)
    apply_args(cfg, args)
    if args.trust_checkpoint:  # the flag wins over the config; the runner applies it
        cfg.trust_checkpoint = True
    runner = build_runner(cfg)
    metrics = runner.test()
    close_process_group()
    return metrics


if __name__ == '__main__':
    main()
