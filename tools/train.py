"""Train a detector from a config (mmdet 3.x tools/train.py behaviour).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT] | --resume-if-exists] [--amp]
        [--auto-scale-lr] [--trust-checkpoint] [--vis-backend tensorboard|wandb]
        [--cfg-options KEY=VALUE ...]
        [--launcher none|pytorch|slurm|mpi]

Several processes: tools/dist_train.sh CONFIG NUM_PROCESSES [ARGS] (also CPU-only, with gloo).
Before anything is built, a missing pretrained backbone file stops the run with the download and
convert commands. ``load_from`` weights are read with the safe (weights-only) loader.
"""
import argparse
import logging
import sys

from mmengine.logging import print_log

from mmdet_dinov2.engine.launch import (add_run_arguments, build_runner, close_process_group,
                                        load_config, parse_run_arguments)
from mmdet_dinov2.engine.pretrained_check import MissingPretrainedError, check_pretrained_files
from mmdet_dinov2.engine.runner import ResumeError
from mmdet_dinov2.engine.work_dir_lock import WorkDirLockedError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (AmpOptimWrapper, dynamic loss scale)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by (total batch size) / auto_scale_lr.base_batch_size')
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CHECKPOINT, or without a value from the latest '
                             'checkpoint in the work dir (an error when there is none)')
    resume.add_argument('--resume-if-exists', action='store_true',
                        help='resume from the latest checkpoint in the work dir if there is one, '
                             'else start a new run (for jobs that a cluster may requeue)')
    add_run_arguments(parser, 'override config settings, KEY=VALUE (e.g. '
                              'train_dataloader.batch_size=4 model.backbone.with_cp=True)')
    parser.add_argument('--vis-backend', choices=sorted(VIS_BACKENDS), action='append', default=[],
                        help='also log to TensorBoard (pip install tensorboard) or Weights & '
                             'Biases (pip install wandb; WANDB_* variables); repeatable')
    return parse_run_arguments(parser, argv)


VIS_BACKENDS = dict(tensorboard='TensorboardVisBackend', wandb='WandbVisBackend')


def apply_args(cfg, args):
    """Apply --amp, --auto-scale-lr, --vis-backend and --resume / --resume-if-exists to ``cfg``."""
    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper == 'AmpOptimWrapper':
            print_log('AMP is already on in the config', logger='current', level=logging.WARNING)
        elif wrapper != 'OptimWrapper':
            raise ValueError(f'--amp needs optim_wrapper.type OptimWrapper, the config has {wrapper}')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError('--auto-scale-lr needs auto_scale_lr = dict(enable=..., '
                             'base_batch_size=...) in the config')
        cfg.auto_scale_lr.enable = True
    for name in args.vis_backend:  # mmengine's visualizer writes every scalar to each backend
        backends = cfg.visualizer.setdefault('vis_backends', [dict(type='LocalVisBackend')])
        if all(b.get('type') != VIS_BACKENDS[name] for b in backends):
            backends.append(dict(type=VIS_BACKENDS[name]))
    if args.resume_if_exists:
        cfg.resume, cfg.load_from = 'if_exists', None
    elif args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher)
    apply_args(cfg, args)
    if args.trust_checkpoint:  # the flag wins over the config; the runner applies it
        cfg.trust_checkpoint = True
    try:
        check_pretrained_files(cfg)
    except MissingPretrainedError as err:
        sys.exit(f'error: {err}')
    cfg.lock_work_dir_at_build = True  # nothing is written into a busy work dir
    try:
        build_runner(cfg).train()
    except (ResumeError, WorkDirLockedError) as err:
        sys.exit(f'error: {err}')
    close_process_group()


if __name__ == '__main__':
    main()
