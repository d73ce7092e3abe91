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
import re
import sys
from pathlib import Path

from mmengine.logging import print_log

from mmdet_dinov2.checkpoints import REMOTE_PREFIXES
from mmdet_dinov2.engine.launch import (add_run_arguments, build_runner, close_process_group,
                                        load_config, parse_run_arguments)
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


DOWNLOAD_ROOT = 'https://dl.fbaipublicfiles.com/dinov2'
# dinov2_vits14_pretrain.pth, dinov2_vitg14_reg4_pretrain_14to16.pth, ...
DINOV2_FILE = re.compile(r'(?P<arch>dinov2_vit[sblg]14)(?P<reg>_reg4)?_pretrain(?P<converted>_14to16)?')


class MissingPretrainedError(FileNotFoundError):
    """A pretrained backbone file named in the config does not exist."""


def check_pretrained_files(cfg):
    """Raise :class:`MissingPretrainedError` with the commands that fetch it when a local file of
    ``model.backbone.pretrained`` or a ``Pretrained`` ``init_cfg`` is missing: before anything is
    built, not deep inside the weight loading."""
    backbone = cfg.get('model', {}).get('backbone') or {}
    init_cfg = backbone.get('init_cfg') or {}
    paths = [('model.backbone.pretrained', backbone.get('pretrained'))]
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        paths.append(('model.backbone.init_cfg.checkpoint', init_cfg.get('checkpoint')))
    for key, path in paths:
        if not path or str(path).startswith(REMOTE_PREFIXES) or Path(path).is_file():
            continue
        match = DINOV2_FILE.search(Path(path).name)
        fetch = 'Put the file there or point the config at it.\n'
        if match:
            raw = Path(path).with_name(f'{match["arch"]}{match["reg"] or ""}_pretrain.pth')
            fetch = (f'Download and convert it (from the repository root):\n  mkdir -p {raw.parent}\n'
                     f'  wget -P {raw.parent} {DOWNLOAD_ROOT}/{match["arch"]}/{raw.name}\n'
                     + (f'  python tools/convert_14to16.py {raw}\n' if match['converted'] else ''))
        raise MissingPretrainedError(
            f'pretrained backbone weights not found: {path} ({key}).\n{fetch}'
            f'Or set another file with --cfg-options {key}=PATH (the raw 14-patch DINOv2 '
            f'file also loads), or {key}=None to start the backbone from random weights, e.g. '
            'when load_from gives the weights of a whole detector.')


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
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher,
                      trust=args.trust_checkpoint)
    apply_args(cfg, args)
    try:
        check_pretrained_files(cfg)
    except MissingPretrainedError as err:
        sys.exit(f'error: {err}')
    cfg.lock_work_dir_at_build = True  # nothing is written into a busy work dir
    try:
        build_runner(cfg).train()  # no reference kept: close_process_group frees the runner
    except (ResumeError, WorkDirLockedError) as err:
        sys.exit(f'error: {err}')
    close_process_group()


if __name__ == '__main__':
    main()
