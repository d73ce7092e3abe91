"""Plot the training loss and the validation AP curves of an mmengine work dir as one PNG.

Reads every ``WORK_DIR/<timestamp>/vis_data/scalars.json`` that mmengine's ``LocalVisBackend``
wrote (a resumed run adds a folder per start; a later record of the same step wins).

Usage::

    python tools/analysis_tools/plot_curves.py WORK_DIR [--out WORK_DIR/curves.png]
"""
import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

AP_KEYS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50')


def read_scalars(work_dir):
    """Train and val records of a work dir, each sorted by step.

    Args:
        work_dir (str | Path): an mmengine work dir.

    Returns:
        tuple[list[dict], list[dict]]: the training records (with ``loss``; ``step`` is the
        iteration) and the validation records (with ``coco/...`` keys; ``step`` is the epoch, or
        the iteration for iteration-based loops).
    """
    train, val = {}, {}
    for path in sorted(Path(work_dir).glob('*/vis_data/scalars.json')):  # timestamps sort in time
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if 'loss' in record:
                    train[record['step']] = record
                elif any(k.startswith('coco/') for k in record):
                    val[record['step']] = record
    return [train[k] for k in sorted(train)], [val[k] for k in sorted(val)]


def plot_curves(work_dir, out_file):
    """Draw the loss terms against iterations and the AP figures against epochs.

    Args:
        work_dir (str | Path): an mmengine work dir.
        out_file (str | Path): the PNG to write.

    Returns:
        Path: ``out_file``.
    """
    train, val = read_scalars(work_dir)
    if not train:
        raise FileNotFoundError(f'no training records (*/vis_data/scalars.json with a "loss") in '
                                f'{work_dir}: train first, with LocalVisBackend in vis_backends')
    fig, (ax_loss, ax_ap) = plt.subplots(1, 2, figsize=(12, 4.5))
    loss_keys = sorted({k for r in train for k in r if k.startswith('loss')})
    steps = [r['step'] for r in train]
    for key in loss_keys:
        ax_loss.plot(steps, [r.get(key, float('nan')) for r in train], label=key,
                     linewidth=2 if key == 'loss' else 1)
    ax_loss.set(xlabel='iteration', ylabel='loss', title='training loss', yscale='log')
    ax_loss.legend(fontsize=8)
    ax_loss.grid(alpha=0.3)

    for key in AP_KEYS:
        if any(key in r for r in val):
            points = [(r['step'], r[key]) for r in val if key in r]
            ax_ap.plot(*zip(*points), marker='o', label=key.removeprefix('coco/'),
                       linestyle='-' if key.endswith('mAP') else '--')
    ax_ap.set(xlabel='epoch', ylabel='COCO AP', title='validation AP', ylim=(0, 1))
    if val:
        ax_ap.legend(fontsize=8)
    else:
        ax_ap.text(0.5, 0.5, 'no validation yet', ha='center', transform=ax_ap.transAxes)
    ax_ap.grid(alpha=0.3)
    fig.tight_layout()
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('work_dir')
    parser.add_argument('--out', help='PNG to write (default: WORK_DIR/curves.png)')
    args = parser.parse_args()
    print(plot_curves(args.work_dir, args.out or Path(args.work_dir) / 'curves.png'))


if __name__ == '__main__':
    main()
