"""Detect objects in images with mmdet's DetInferencer (mmdet 3.x demo/image_demo.py arguments).

    python demo/image_demo.py INPUTS MODEL [--weights CHECKPOINT] [--out-dir DIR]
        [--device cpu|cuda] [--pred-score-thr 0.3] [--batch-size N] [--show] [--no-save-vis]
        [--no-save-pred] [--print-result] [--palette coco|voc|citys|random|none]
        [--trust-checkpoint] [--partial-load] [--max-pixels N]

INPUTS is an image, a folder (its images, not recursive) or a quoted glob ('photos/**/*.jpg').
MODEL is a config file (or a checkpoint file holding its config, which then counts as --weights;
that config is read as data, never run).
For every image, OUT_DIR/vis/NAME is the image with the predictions drawn (scores of at least
--pred-score-thr) and OUT_DIR/preds/NAME_WITHOUT_SUFFIX.json holds all predictions: ``labels``
(indices into the model's classes), ``scores``, ``bboxes`` (x1, y1, x2, y2 in image pixels) and
``masks`` (COCO RLE, ``pycocotools.mask.decode`` turns one into an HxW array).

The checkpoint (a file or a URL) is read with the safe (weights-only) loader and checked as
tools/test.py checks it (NaN/inf, tensors of another shape or kind, missing parts; --partial-load
loads what fits); checkpoints of the original ViT-Adapter (mmdet 2.x) load as they are. DINOv2
pretrained files are not needed.

Before the model is built, every image's header is read: an image declaring more than
--max-pixels pixels stops the run, naming it. An image that cannot be read (not an image, empty,
cut short) is skipped with a warning naming it and the others are done; the run then ends with a
summary of the skipped files and exit status 1.
"""
import argparse
import os.path as osp
import logging
import sys

import mmcv
from mmengine.logging import print_log
from mmengine.utils import track_iter_progress

from mmdet.apis.det_inferencer import IMG_EXTENSIONS
from mmdet_dinov2.apis import DetInferencer
from mmdet_dinov2.checkpoints import is_url, trusted_checkpoints
from mmdet_dinov2.datasets.limits import MAX_PIXELS, InputLimitError, check_image_pixels

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # demo_inputs.py, beside this file
import demo_inputs  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Detect objects in images')
    parser.add_argument('inputs', help='an image, a folder of images or a quoted glob pattern')
    parser.add_argument('model', help='config file, or a checkpoint file that holds its config')
    parser.add_argument('--weights', help='checkpoint file or URL')
    parser.add_argument('--out-dir', default='outputs',
                        help='where drawn images (vis/) and predictions (preds/) go')
    parser.add_argument('--device', help='cpu, cuda or cuda:N (default: cuda if available)')
    parser.add_argument('--pred-score-thr', type=float, default=0.3,
                        help='draw predictions with at least this score (the JSON holds all)')
    parser.add_argument('--batch-size', type=int, default=1, help='images per forward pass')
    parser.add_argument('--show', action='store_true', help='show each image in a window')
    parser.add_argument('--no-save-vis', action='store_true', help='do not write drawn images')
    parser.add_argument('--no-save-pred', action='store_true', help='do not write JSON files')
    parser.add_argument('--print-result', action='store_true', help='print the predictions')
    parser.add_argument('--palette', default='none',
                        choices=['coco', 'voc', 'citys', 'random', 'none'],
                        help='box colours (none: the config\'s, else random)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load a checkpoint whose pickle needs more than tensors and plain '
                             'data (it may run code): only for files you trust')
    parser.add_argument('--partial-load', action='store_true',
                        help='load the checkpoint tensors that fit the model and log the rest '
                             '(partial_load = True in the config does the same)')
    parser.add_argument('--max-pixels', type=int, default=MAX_PIXELS,
                        help='refuse images whose header declares more pixels (width x height)')
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f'--batch-size {args.batch_size}: give 1 or more')
    if args.model.endswith('.pth') and args.weights is None:  # as mmdet's demo does
        args.model, args.weights = None, args.model
    return args


def collect_inputs(inputs):
    """demo_inputs.collect_inputs with DetInferencer's image suffixes; URLs are taken as they are."""
    return demo_inputs.collect_inputs(inputs, IMG_EXTENSIONS, is_url)


def readable_images(files, max_pixels):
    """The images among ``files`` whose header can be read, and those whose cannot (each named in a
    warning); URLs are not checked.

    Raises:
        InputLimitError: an image declares more than ``max_pixels`` pixels.
    """
    readable, unreadable = [], []
    for path in files:
        try:
            if not is_url(path):
                check_image_pixels(path, max_pixels, how_to_raise='--max-pixels')
            readable.append(path)
        except InputLimitError as err:
            if not isinstance(err.__cause__, (OSError, SyntaxError, ValueError)):
                raise  # over a limit, not unreadable: stop, the user decides
            print_log(f'skipped: {err}', logger='current', level=logging.WARNING)
            unreadable.append(path)
    return readable, unreadable


def check_out_dir(out_dir):
    """Refuse, before any work, an ``out_dir`` whose outputs could not be written.

    Raises:
        SystemExit: naming the file that stands where a folder has to be.
    """
    existing = osp.abspath(out_dir)
    while not osp.exists(existing):
        existing = osp.dirname(existing)
    in_the_way = [path for path in (existing, osp.join(out_dir, 'vis'), osp.join(out_dir, 'preds'))
                  if osp.exists(path) and not osp.isdir(path)]
    if in_the_way:
        raise SystemExit(f'error: --out-dir {out_dir}: {in_the_way[0]} is a file, not a folder; '
                         'give a folder for the drawn images (vis/) and predictions (preds/)')


def predict(inferencer, files, batch_size, **kwargs):
    """The inferencer's predictions for ``files``, a batch at a time; an image that cannot be
    decoded is skipped with a warning naming it.

    Returns:
        tuple[list, list]: the predictions, the files skipped.
    """
    predictions, skipped = [], []
    for start in track_iter_progress(list(range(0, len(files), batch_size))):
        batch = files[start:start + batch_size]
        try:
            predictions += inferencer(batch, batch_size=batch_size, **kwargs)['predictions']
            continue
        except Exception:  # noqa: BLE001 (mmcv asserts or OpenCV fails on an undecodable image)
            broken = [path for path in batch if not _decodes(path)]
            if not broken:
                raise
        for path in broken:
            print_log(f'skipped: {path}: the image cannot be decoded (cut short or damaged?)',
                      logger='current', level=logging.WARNING)
        skipped += broken
        rest = [path for path in batch if path not in broken]
        if rest:
            predictions += inferencer(rest, batch_size=batch_size, **kwargs)['predictions']
    return predictions, skipped


def _decodes(path):
    try:
        return mmcv.imread(path) is not None
    except Exception:  # noqa: BLE001 (any failure to decode means the same)
        return False


def build_inferencer(model, weights=None, device=None, palette='none', trust=False,
                     partial_load=None):
    """:class:`mmdet_dinov2.apis.DetInferencer` (mmdet's, the weights checked); ``trust`` lets a
    checkpoint that needs full unpickling load."""
    with trusted_checkpoints(trust):
        return DetInferencer(model=model, weights=weights, device=device, palette=palette,
                             partial_load=partial_load)


def main(argv=None):
    args = parse_args(argv)
    try:
        inputs = collect_inputs(args.inputs)
        files, skipped = readable_images([inputs] if isinstance(inputs, str) else inputs,
                                         args.max_pixels)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f'error: {err}')
    if not files:
        raise SystemExit(f'error: no image could be read: {", ".join(skipped)}')
    out_dir = '' if args.no_save_vis and args.no_save_pred else args.out_dir
    if out_dir:
        check_out_dir(out_dir)
    inferencer = build_inferencer(args.model, args.weights, args.device, args.palette,
                                  args.trust_checkpoint, args.partial_load or None)
    inferencer.show_progress = False  # one call per batch, one bar over them all
    predictions, undecodable = predict(
        inferencer, files, args.batch_size, show=args.show, no_save_vis=args.no_save_vis,
        no_save_pred=args.no_save_pred, print_result=args.print_result,
        pred_score_thr=args.pred_score_thr, out_dir=out_dir)
    skipped += undecodable
    print_log(f'{len(predictions)} image(s) done' + (f', results in {out_dir}' if out_dir else ''),
              logger='current')
    if skipped:
        raise SystemExit(f'error: {len(skipped)} of {len(skipped) + len(predictions)} image(s) '
                         f'could not be read and were skipped: {", ".join(skipped)}')
    return dict(predictions=predictions)


if __name__ == '__main__':
    main()
