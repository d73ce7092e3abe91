"""Export a ViT-Adapter Mask R-CNN to ONNX and check ONNX Runtime against PyTorch.

    python tools/deployment/export_onnx.py CONFIG [CHECKPOINT] --out model.onnx [--shape H W]
        [--opset 17] [--verify] [--cfg-options KEY=VALUE ...]

The file holds the whole detector for one image (tools/deployment/onnx_model.py): backbone with
deformable attention as Gather and MatMul, FPN, RPN with NonMaxSuppression, RoiAlign, the box head with
per-class NMS and the mask head's 28x28 probabilities, standard ONNX operators only. Inputs and
outputs: see ``onnx_model.py``; pre-processing and mask pasting: ``onnx_io.py``, whose settings
(classes, mean, std, resize scale, input shape) are stored in the file's metadata. Without
CHECKPOINT the weights are random (for checks and benchmarks). ``--verify`` runs a random image
through both and prints the comparison (boxes, scores, labels, mask pixels).
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_io import META_KEYS, paste_masks  # noqa: E402
from onnx_model import MaskRCNNForExport  # noqa: E402

OUTPUT_NAMES = ('boxes', 'scores', 'labels', 'masks')


def build_detector(config, checkpoint=None, cfg_options=None):
    """The detector on the CPU in eval mode, SyncBN reverted (mmdet's ``init_detector``); without a
    checkpoint the classes are the config's (``test_dataloader.dataset.metainfo``)."""
    from mmdet.apis import init_detector
    from mmengine.config import Config

    import mmdet_dinov2  # noqa: F401  (registers the models and the safe checkpoint readers)

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.model.backbone.pop('pretrained', None)  # a checkpoint (or nothing) gives every weight
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='checkpoint is None')
        detector = init_detector(cfg, checkpoint, device='cpu')
    classes = cfg.get('test_dataloader', {}).get('dataset', {}).get('metainfo', {}).get('classes')
    if checkpoint is None and classes:
        detector.dataset_meta = {'classes': tuple(classes)}
    detector.cfg = cfg
    return detector.eval()


def export_settings(detector, shape=None):
    """The metadata :mod:`onnx_io` needs; ``shape`` (H, W) defaults to the test pipeline's Resize
    scale, long side across, padded up to the preprocessor's ``pad_size_divisor``."""
    cfg, pre = detector.cfg, detector.data_preprocessor
    resize = next(t for t in cfg.test_pipeline if t['type'] == 'Resize')
    scale = [int(s) for s in resize['scale']]
    if shape is None:
        step = getattr(pre, 'pad_size_divisor', 1)
        shape = [-(-min(scale) // step) * step, -(-max(scale) // step) * step]
    return dict(
        classes=list(detector.dataset_meta['classes']),
        **normalisation(cfg, pre),
        resize_scale=scale,
        input_shape=[int(s) for s in shape],
    )


def normalisation(cfg, pre):
    """mean, std and bgr_to_rgb of the test input: the data preprocessor's, or those of a
    ``Normalize`` step in the test pipeline (after the resize, before the zero padding, as
    :func:`onnx_io.preprocess` applies them), or none (mean 0, std 1)."""
    steps = [t for t in cfg.test_pipeline if t['type'].rsplit('.', 1)[-1] == 'Normalize']
    in_pre = bool(getattr(pre, '_enable_normalize', False))
    if len(steps) + in_pre > 1:
        raise ValueError(
            f'export: the test input is normalised {len(steps) + in_pre} times (data '
            f'preprocessor: {in_pre}, test_pipeline Normalize steps: {len(steps)}); '
            'onnx_io.preprocess applies one mean/std: keep one of them in the config'
        )
    if in_pre:
        return dict(
            mean=pre.mean.flatten().tolist(),
            std=pre.std.flatten().tolist(),
            bgr_to_rgb=bool(pre._channel_conversion),
        )
    if steps and pre._channel_conversion:
        raise ValueError(
            'export: the test pipeline normalises and the data preprocessor then '
            'swaps the channels (bgr_to_rgb=True), which onnx_io.preprocess does not '
            'do: swap in one place only (Normalize(to_rgb=...))'
        )
    if steps:
        step = steps[0]
        return dict(
            mean=[float(v) for v in step['mean']],
            std=[float(v) for v in step['std']],
            bgr_to_rgb=bool(step.get('to_rgb', True)),
        )
    return dict(mean=[0.0] * 3, std=[1.0] * 3, bgr_to_rgb=bool(pre._channel_conversion))


def export(detector, out, shape=None, opset=17):
    """Write the ONNX file of ``detector`` for inputs of ``shape`` (H, W); return its settings."""
    import onnx

    settings = export_settings(detector, shape)
    h, w = settings['input_shape']
    image = torch.randn(1, 3, h, w)
    size = torch.tensor([h, w], dtype=torch.float32)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        # eval() first: the exporter restores the mode it found, for the detector inside too
        torch.onnx.export(
            MaskRCNNForExport(detector).eval(),
            (image, size),
            str(out),
            dynamo=False,
            opset_version=opset,
            input_names=['image', 'image_size'],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: {0: 'detections'} for name in OUTPUT_NAMES},
        )
    model = onnx.load(str(out))
    onnx.helper.set_model_props(model, {k: json.dumps(settings[k]) for k in META_KEYS})
    onnx.save(model, str(out))
    return settings


def torch_predictions(detector, image, size):
    """mmdet's own ``predict`` on the network input: boxes, scores, labels, (N, h, w) masks."""
    from mmdet.structures import DetDataSample

    h, w = (int(v) for v in size)
    sample = DetDataSample(
        metainfo=dict(
            img_shape=(h, w),
            ori_shape=(h, w),
            scale_factor=(1.0, 1.0),
            batch_input_shape=tuple(image.shape[2:]),
            pad_shape=tuple(image.shape[2:]),
        )
    )
    with torch.no_grad():
        pred = detector.predict(torch.as_tensor(image), [sample], rescale=True)[0].pred_instances
    return pred.bboxes.numpy(), pred.scores.numpy(), pred.labels.numpy(), pred.masks.numpy()


def onnx_predictions(session, image, size):
    """The ONNX file's predictions on the same input, masks pasted: as :func:`torch_predictions`."""
    boxes, scores, labels, masks = session.run(None, {'image': image, 'image_size': size})
    return boxes, scores, labels, paste_masks(masks, boxes, tuple(int(v) for v in size))


def box_iou(a, b):
    """Pairwise IoU of boxes a (N, 4) and b (M, 4) -> (N, M)."""
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a, area_b = ((x[:, 2:] - x[:, :2]).prod(1) for x in (a, b))
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-12)


def compare(theirs, ours, min_iou=0.99, score_tol=1e-3):
    """Match ``ours`` (ONNX Runtime) to ``theirs`` (PyTorch) one to one: each of their detections,
    best score first, takes the unmatched one of ours with its label, IoU >= ``min_iou`` and score
    within ``score_tol`` that overlaps it most (the order of near-equal scores may differ).
    Returns the counts, the worst matched IoU and score difference and, over matched pairs, the
    share of mask pixels (pasted, (N, h, w)) that agree."""
    (b0, s0, l0, m0), (b1, s1, l1, m1) = theirs, ours
    iou = (
        box_iou(b0, b1) * (l0[:, None] == l1[None]) * (np.abs(s0[:, None] - s1[None]) <= score_tol)
    )
    pairs, taken = [], np.zeros(len(s1), bool)
    for i in np.argsort(-s0, kind='stable'):
        candidates = np.where(taken, -1.0, iou[i])
        j = int(candidates.argmax()) if len(s1) else -1
        if j >= 0 and candidates[j] >= min_iou:
            taken[j] = True
            pairs.append((i, j))
    i, j = (np.array(v, int) for v in zip(*pairs)) if pairs else (np.zeros(0, int),) * 2
    agree = (m0[i] == m1[j]).mean() if len(i) else 1.0
    return dict(
        torch=len(s0),
        onnx=len(s1),
        matched=len(pairs),
        min_iou=float(iou[i, j].min(initial=1.0)),
        max_score_diff=float(np.abs(s0[i] - s1[j]).max(initial=0.0)),
        mask_agreement=float(agree),
    )


def backbone_error(detector, image, path):
    """The backbone alone exported to ``path`` and run by ONNX Runtime on ``image``: the largest
    difference from PyTorch's maps, relative to each map's largest magnitude."""
    import onnxruntime as ort

    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        ref = detector.backbone(torch.as_tensor(image))
        torch.onnx.export(
            detector.backbone,
            (torch.as_tensor(image),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=['image'],
        )
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    maps = session.run(None, {'image': np.asarray(image)})
    return max(
        float(np.abs(r.numpy() - m).max() / np.abs(r.numpy()).max()) for r, m in zip(ref, maps)
    )


def parse_args(argv=None):
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description='Export a Mask R-CNN config to ONNX')
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', help='weights (default: random, for checks)')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='network input size (default: the test Resize scale, padded)',
    )
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset (16 or newer)')
    parser.add_argument('--dynamic', action='store_true', help='height and width as graph inputs')
    parser.add_argument(
        '--verify', action='store_true', help='compare ONNX Runtime with PyTorch on a random image'
    )
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='load a checkpoint whose pickle needs more than tensors (may run code)',
    )
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='config overrides')
    args = parser.parse_args(argv)
    if args.opset < 16:
        parser.error(f'--opset {args.opset}: RoiAlign(half_pixel) needs 16 or newer')
    if args.dynamic:
        parser.error(
            '--dynamic: not supported: tracing fixes the input size (which window-attention '
            'regions exist depends on it, and their sizes, deformable-attention level shapes '
            'and anchor grids are Python numbers computed from it); export one file per size '
            'with --shape (docs/deployment.md)'
        )
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmdet_dinov2.checkpoints import trusted_checkpoints

    with trusted_checkpoints(args.trust_checkpoint):
        detector = build_detector(args.config, args.checkpoint, args.cfg_options)
    settings = export(detector, args.out, args.shape, args.opset)
    print(
        f'wrote {args.out}: input 1x3x{settings["input_shape"][0]}x{settings["input_shape"][1]}, '
        f'{len(settings["classes"])} classes'
    )
    if args.verify:
        import onnxruntime as ort

        h, w = settings['input_shape']
        image = np.random.default_rng(0).standard_normal((1, 3, h, w), dtype=np.float32)
        size = np.float32([h, w])
        session = ort.InferenceSession(args.out, providers=['CPUExecutionProvider'])
        report = compare(
            torch_predictions(detector, image, size), onnx_predictions(session, image, size)
        )
        report['backbone_rel_error'] = backbone_error(
            detector, image, Path(args.out).with_suffix('.backbone.onnx')
        )
        print('verify:', json.dumps(report))


if __name__ == '__main__':
    main()
