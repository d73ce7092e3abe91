"""Draw a detector's predictions beside the ground truth for a few validation images.

Each output PNG holds two panels drawn by mmdet's ``DetLocalVisualizer``: the ground-truth boxes and
masks on the left, the predictions above a score threshold on the right. Images are upscaled before
drawing so that labels stay legible on small images.

Usage::

    python tools/misc/visualize_predictions.py CONFIG CHECKPOINT --out-dir DIR [--num 4]
        [--score-thr 0.3] [--trust-checkpoint]
"""
import argparse
from pathlib import Path

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from mmdet.registry import DATASETS, MODELS
from mmdet.visualization import DetLocalVisualizer

MIN_DRAW_SIDE = 512  # images smaller than this are upscaled (nearest) before drawing


def upscaled(image, sample, factor):
    """The image and a copy of the sample's gt/pred instances, enlarged by an integer factor."""
    if factor == 1:
        return image, sample
    sample = sample.clone()
    image = np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
    for field in ('gt_instances', 'pred_instances'):
        instances = sample.get(field)
        if instances is None:
            continue
        instances.bboxes = instances.bboxes * factor
        if 'masks' in instances:
            masks = instances.masks
            if hasattr(masks, 'to_ndarray'):  # BitmapMasks / PolygonMasks from the dataset
                masks = masks.to_ndarray()
            masks = torch.as_tensor(np.asarray(masks)).bool()
            instances.masks = masks.repeat_interleave(factor, 1).repeat_interleave(factor, 2)
    return image, sample


@torch.no_grad()
def draw_predictions(model, dataset, out_dir, num_images=4, score_thr=0.3):
    """Run the model on the first images of a dataset and save GT | prediction PNGs.

    Args:
        model (nn.Module): an mmdet detector.
        dataset (BaseDetDataset): a dataset whose pipeline loads the annotations.
        out_dir (str | Path): folder for the PNGs (``<image name>.png``).
        num_images (int): how many images, from the start of the dataset.
        score_thr (float): predictions scoring below this are not drawn.

    Returns:
        list[Path]: the written files.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    visualizer = DetLocalVisualizer.get_instance('visualize_predictions', alpha=0.5)
    visualizer.dataset_meta = dataset.metainfo
    was_training = model.training
    model.eval()
    written = []
    for index in range(min(num_images, len(dataset))):
        sample = model.test_step(pseudo_collate([dataset[index]]))[0]
        image = mmcv.imread(sample.img_path, channel_order='rgb')
        factor = max(1, -(-MIN_DRAW_SIDE // max(image.shape[:2])))
        image, sample = upscaled(image, sample, factor)
        out_file = out_dir / f'{Path(sample.img_path).stem}.png'
        visualizer.add_datasample(out_file.stem, image, sample, draw_gt=True, draw_pred=True,
                                  out_file=str(out_file), pred_score_thr=score_thr)
        written.append(out_file)
    model.train(was_training)
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--num', type=int, default=4, help='number of validation images')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow a checkpoint whose pickle holds arbitrary objects (can run '
                             'code): only for files you trust')
    args = parser.parse_args()

    from mmdet_dinov2.checkpoints.io import load_state_dict_file
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    model.load_state_dict(load_state_dict_file(args.checkpoint, trust=args.trust_checkpoint))
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    for path in draw_predictions(model, dataset, args.out_dir, args.num, args.score_thr):
        print(path)


if __name__ == '__main__':
    main()
