"""Evaluate a detector checkpoint on the config's test set (mmdet 3.x tools/test.py behaviour).

    python tools/test.py CONFIG CHECKPOINT [--out PKL] [--show-dir DIR] [--show] [--wait-time S]
        [--show-score-thr T] [--tta] [--work-dir DIR] [--trust-checkpoint]
        [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm|mpi]

Prints box and mask AP (AP, AP50, AP75, APs, APm, APl) through mmdet's CocoMetric, and exits with
an error when the evaluation gives no metric (nothing predicted on any test image). CHECKPOINT is
read with the safe (weights-only) loader; checkpoints of the original ViT-Adapter (mmdet 2.x)
load as they are. Several processes: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [ARGS].
"""
import argparse
import copy
import os
import os.path as osp
import tempfile

from mmengine.config import ConfigDict

from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmdet.models.test_time_augs import DetTTAModel
from mmdet.registry import MODELS

from mmdet_dinov2.checkpoints.remote import is_url
from mmdet_dinov2.engine.launch import (add_run_arguments, build_runner, close_process_group,
                                        load_config, parse_run_arguments)

# mmdet's PackDetInputs default meta keys
PACK_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                  'flip_direction')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump the predictions to this pickle file (.pkl)')
    parser.add_argument('--show-dir', help='save images with predictions drawn to this dir '
                                           '(relative paths go under WORK_DIR/<timestamp>/)')
    parser.add_argument('--show', action='store_true', help='show each image with its predictions')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds each image is shown with --show')
    parser.add_argument('--show-score-thr', type=float,
                        help='draw predictions with at least this score (--show, --show-dir; '
                             'default: the visualization hook\'s, 0.3)')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation (mmdet\'s DetTTAModel: boxes of the image '
                             'and its flip merged; box AP only, masks are not merged)')
    add_run_arguments(parser)
    args = parse_run_arguments(parser, argv)
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
    """Point the config at the checkpoint and add --out, --show / --show-dir and --tta."""
    if not (is_url(args.checkpoint) or osp.isfile(args.checkpoint)):
        raise FileNotFoundError(f'checkpoint file not found: {args.checkpoint}')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show or args.show_dir:
        if 'visualization' not in cfg.default_hooks:
            raise ValueError('--show and --show-dir need default_hooks.visualization in the config')
        trigger_visualization_hook(cfg, args)  # mmdet's: draw, show and wait_time, test_out_dir
        if args.show_score_thr is not None:
            cfg.default_hooks.visualization.score_thr = args.show_score_thr
    if args.tta:
        apply_tta(cfg)
    if args.out:
        evaluators = cfg.test_evaluator
        evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
        cfg.test_evaluator = evaluators + [dict(type='DumpDetResults', out_file_path=args.out)]


@MODELS.register_module(force=True)  # force: tests import this script more than once
class BoxTTAModel(DetTTAModel):
    """mmdet's DetTTAModel (the boxes of all views merged by NMS) for a detector that also
    predicts masks, which DetTTAModel cannot merge: they are dropped, and boxes are evaluated.

    Its weights are its module's (mmengine's ``load_state_dict`` unwraps a TTA model the same
    way), so SafeLoadRunner checks and loads a detector checkpoint into it as into the detector.
    """

    def merge_preds(self, data_samples_list):
        for samples in data_samples_list:
            for sample in samples:
                if 'masks' in sample.pred_instances:
                    del sample.pred_instances.masks
        return super().merge_preds(data_samples_list)

    def state_dict(self, *args, **kwargs):
        return self.module.state_dict(*args, **kwargs)


def apply_tta(cfg):
    """--tta as mmdet's tools/test.py does it: the config's ``tta_model`` (default: NMS over the
    boxes of all views, :class:`BoxTTAModel`) around the model, over its ``tta_pipeline``
    (default: the test pipeline ending in the image and its horizontal flip). Box AP only."""
    cfg.setdefault('tta_model', dict(type='BoxTTAModel', tta_cfg=dict(
        nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)))
    if 'tta_pipeline' not in cfg:
        dataset = cfg.test_dataloader.dataset
        while 'dataset' in dataset:  # a wrapped dataset (RepeatDataset, ...)
            dataset = dataset.dataset
        pipeline = copy.deepcopy(dataset.pipeline)
        pack = dict(pipeline[-1])
        pack['meta_keys'] = tuple(dict.fromkeys(
            tuple(pack.get('meta_keys', PACK_META_KEYS)) + ('flip', 'flip_direction')))
        pipeline[-1] = dict(type='TestTimeAug', transforms=[
            [dict(type='RandomFlip', prob=1.0), dict(type='RandomFlip', prob=0.0)], [pack]])
        cfg.tta_pipeline = pipeline
    evaluators = cfg.test_evaluator
    for evaluator in evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]:
        if evaluator.get('type', '').split('.')[-1] == 'CocoMetric':
            evaluator['metric'] = 'bbox'
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher,
                      trust=args.trust_checkpoint)
    apply_args(cfg, args)
    runner = build_runner(cfg)
    metrics, num_images = runner.test(), len(runner.test_dataloader.dataset)
    del runner  # close_process_group frees the group with the runner's DDP wrapper
    close_process_group()
    if not metrics:  # CocoMetric logs an error and returns nothing when nothing was predicted
        raise SystemExit(
            f'error: the evaluation of {args.checkpoint} gave no metric: no prediction on the '
            f'{num_images} test images passed the test score threshold '
            '(model.test_cfg.rcnn.score_thr for Mask R-CNN). Check that the checkpoint belongs to '
            'this config and trained long enough, or lower the threshold.')
    return metrics


if __name__ == '__main__':
    main()
