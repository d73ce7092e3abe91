"""Summarise a layer-decay sweep: box and mask AP per ``layer_decay_rate``, as a markdown table.

    python tools/analysis_tools/sweep_summary.py work_dirs/mask-rcnn_dinov2-adapter-s_ld0.70 ...
        [--pick final|best]

Each WORK_DIR is one training run of mmengine: its evaluations are read from
``WORK_DIR/<timestamp>/vis_data/scalars.json`` (every timestamp folder, so resumed runs count), the
rate from the config the run dumped (``WORK_DIR/*.py`` or ``<timestamp>/vis_data/config.py``).
``--pick final`` (default) reports the last evaluated epoch, ``best`` the epoch with the best box AP.
A work dir without an evaluation yet is listed with the reason; the exit status is 1 when no
work dir has one.
"""
import argparse
import json
import sys
from pathlib import Path

BOX_KEY, MASK_KEY = 'coco/bbox_mAP', 'coco/segm_mAP'


class SweepError(ValueError):
    """A work dir that cannot be summarised; the message says why and what to do."""


def read_evaluations(work_dir):
    """Every evaluation a run logged, ordered by epoch.

    Args:
        work_dir (Path): the run's work dir.

    Returns:
        list[dict]: the ``scalars.json`` records that hold ``coco/bbox_mAP``; a later record of an
        epoch (a resumed run evaluating it again) replaces an earlier one.
    """
    logs = sorted(work_dir.glob('*/vis_data/scalars.json'))
    if not logs:
        raise SweepError(f'{work_dir}: no mmengine logs (<timestamp>/vis_data/scalars.json); '
                         'is this a work dir of tools/train.py?')
    by_epoch = {}
    for log in logs:  # timestamp folders sort in time order
        for line_no, line in enumerate(log.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise SweepError(f'{log}:{line_no}: not a JSON line ({err})') from None
            if BOX_KEY in record:
                by_epoch[record['step']] = record
    if not by_epoch:
        raise SweepError(f'{work_dir}: no evaluation yet ({BOX_KEY} in none of {len(logs)} '
                         'scalars.json); wait for the first epoch to end or check val_interval')
    return [by_epoch[step] for step in sorted(by_epoch)]


def read_layer_decay_rate(work_dir):
    """The ``layer_decay_rate`` in the config a run dumped into its work dir."""
    from mmengine.config import Config
    dumps = sorted(work_dir.glob('*.py')) or sorted(work_dir.glob('*/vis_data/config.py'))
    if not dumps:
        raise SweepError(f'{work_dir}: no dumped config (*.py) to read layer_decay_rate from')
    cfg = Config.fromfile(str(dumps[-1]), import_custom_modules=False)
    try:
        return float(cfg.optim_wrapper.paramwise_cfg.layer_decay_rate)
    except AttributeError:
        raise SweepError(f'{dumps[-1]}: optim_wrapper.paramwise_cfg.layer_decay_rate not '
                         'set; not a layer-decay run') from None


def summarise(work_dir, pick='final'):
    """One row of the sweep: rate, chosen epoch and its APs (in %), epochs evaluated."""
    evals = read_evaluations(work_dir)
    chosen = evals[-1] if pick == 'final' else max(evals, key=lambda r: r[BOX_KEY])
    return dict(rate=read_layer_decay_rate(work_dir), epoch=chosen['step'],
                box=100 * chosen[BOX_KEY], mask=100 * chosen.get(MASK_KEY, float('nan')),
                evaluated=len(evals), work_dir=str(work_dir))


def markdown(rows, pick):
    """The detail table (one line per run) and the README-style table (one column per rate)."""
    lines = [f'| layer_decay_rate | box AP | mask AP | epoch ({pick}) | epochs evaluated | '
             'work dir |', '| :-: | :-: | :-: | :-: | :-: | :-- |']
    for r in rows:
        lines.append(f'| {r["rate"]:.2f} | {r["box"]:.1f} | {r["mask"]:.1f} | {r["epoch"]} | '
                     f'{r["evaluated"]} | {r["work_dir"]} |')
    rates = ' | '.join(f'{r["rate"]:.2f}' for r in rows)
    lines += ['', f'| | {rates} |', '| :-- |' + ' :-: |' * len(rows),
              '| box AP | ' + ' | '.join(f'{r["box"]:.1f}' for r in rows) + ' |',
              '| mask AP | ' + ' | '.join(f'{r["mask"]:.1f}' for r in rows) + ' |']
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dirs', nargs='+', type=Path, help='one work dir per run')
    parser.add_argument('--pick', choices=('final', 'best'), default='final',
                        help='final: the last evaluated epoch; best: the best box AP')
    args = parser.parse_args(argv)
    rows, problems = [], []
    for work_dir in args.work_dirs:
        if not work_dir.is_dir():
            problems.append(f'{work_dir}: no such directory')
            continue
        try:
            rows.append(summarise(work_dir, args.pick))
        except SweepError as err:
            problems.append(str(err))
    rows.sort(key=lambda r: r['rate'])
    if rows:
        print(markdown(rows, args.pick))
    for problem in problems:
        print(f'skipped {problem}', file=sys.stderr)
    return 0 if rows else 1


if __name__ == '__main__':
    sys.exit(main())
