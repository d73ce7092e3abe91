"""Check a config's datasets before training: list every problem of their annotation files.

    python tools/misc/check_dataset.py CONFIG [--splits train val test] [--decode]
        [--cfg-options K=V ...]

Each split's dataset is built as training would build it, as a
:class:`~mmdet_dinov2.datasets.CheckedCocoDataset` (a plain ``CocoDataset`` is checked as one), and
every finding is printed: what was fixed (boxes clipped), dropped (degenerate boxes, polygons of
fewer than three points) and refused (a truncated or malformed json, ids that are not integers or
are used twice, missing or truncated images, unknown category ids, sizes that disagree with the
files, polygons with non-finite or far-outside coordinates, RLE masks that do not cover their
image, ...), with image and annotation ids and what to do. ``--decode`` decodes every image in
full (training does that image by image; the default check reads headers and file ends). Exit
status 1 when a split has problems that stop training.
"""
import argparse
import copy
import sys

from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

SPLITS = ('train', 'val', 'test')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='check the annotation files of a config')
    parser.add_argument('config', help='config file')
    parser.add_argument('--splits', nargs='+', choices=SPLITS, default=list(SPLITS),
                        help='which dataloaders to check (default: all the config has)')
    parser.add_argument('--decode', action='store_true',
                        help='decode every image in full (finds damage inside files; slower)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, KEY=VALUE')
    return parser.parse_args(argv)


def check_split(cfg, split, decode=False):
    """Build ``split``'s dataset with every problem listed; print them; True when it can train."""
    from mmdet.registry import DATASETS
    from mmdet_dinov2.datasets import DatasetCheckError, format_problems
    dataset_cfg = copy.deepcopy(cfg[f'{split}_dataloader']['dataset'])
    if dataset_cfg['type'] == 'CocoDataset':
        dataset_cfg['type'] = 'CheckedCocoDataset'
    if dataset_cfg['type'] != 'CheckedCocoDataset':
        print(f'{split}: {dataset_cfg["type"]} is not a COCO dataset; not checked')
        return True
    dataset_cfg['max_listed'] = None
    dataset_cfg['decode_images'] = decode
    try:
        dataset = DATASETS.build(dataset_cfg)
    except DatasetCheckError as err:
        print(f'{split}: REFUSED\n{err}')
        return False
    print(f'{split}: {dataset.ann_file}: {len(dataset)} images usable, '
          f'{len(dataset.problems)} annotation(s) fixed or dropped')
    if dataset.problems:
        print(format_problems(dataset.problems))
    return True


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    splits = [split for split in args.splits if cfg.get(f'{split}_dataloader')]
    results = [check_split(cfg, split, args.decode) for split in splits]
    return 0 if all(results) else 1


if __name__ == '__main__':
    sys.exit(main())
