"""Detect objects in images with an exported detector (tools/deployment/export_onnx.py) on ONNX
Runtime's CPU provider; no torch model, config or checkpoint is read.

    python demo/onnx_demo.py INPUTS MODEL.onnx [--out-dir DIR] [--pred-score-thr 0.3]
        [--threads N]

INPUTS is an image, a folder (its images, not recursive) or a quoted glob. The outputs are those of
demo/image_demo.py: DIR/vis/NAME, the image with the predictions of at least --pred-score-thr
drawn (mmdet's DetLocalVisualizer), and DIR/preds/NAME_WITHOUT_SUFFIX.json with all predictions:
``labels``, ``scores``, ``bboxes`` (x1, y1, x2, y2 in image pixels) and ``masks`` (COCO RLE).
Pre-processing and mask pasting: tools/deployment/onnx_io.py (numpy and OpenCV).
"""
import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from pycocotools import mask as mask_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tools' / 'deployment'))
from onnx_io import paste_masks, preprocess, read_meta  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # demo_inputs.py, beside this file
import demo_inputs  # noqa: E402

# the suffixes demo/image_demo.py reads (mmdet's DetInferencer's)
SUFFIXES = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


def collect_images(inputs):
    """The image files INPUTS names (a file, a folder's images or a glob pattern), sorted, as
    demo/image_demo.py collects them; SystemExit naming the problem, two images whose outputs
    would overwrite each other included."""
    try:
        files = demo_inputs.collect_inputs(inputs, SUFFIXES)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f'error: {err}')
    return [files] if isinstance(files, str) else files


def load_session(path, threads=None):
    """An ONNX Runtime CPU session on ``path`` and the export settings stored in it."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    return session, read_meta(session.get_modelmeta().custom_metadata_map)


def predict(session, meta, image):
    """One BGR image -> boxes (N, 4) in its pixels, scores, labels and (N, h, w) bool masks."""
    batch, size, (sx, sy) = preprocess(image, meta)
    boxes, scores, labels, masks = session.run(None, {'image': batch, 'image_size': size})
    boxes = boxes / np.float32([sx, sy, sx, sy])  # back to the image, as mmdet's rescale=True
    return boxes, scores, labels, paste_masks(masks, boxes, image.shape[:2])


def to_json(boxes, scores, labels, masks):
    """demo/image_demo.py's (mmdet DetInferencer's) per-image JSON."""
    rles = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
    return dict(labels=labels.tolist(), scores=scores.tolist(), bboxes=boxes.tolist(),
                masks=[dict(size=r['size'], counts=r['counts'].decode()) for r in rles])


def draw(image, prediction, classes, score_thr, out_file):
    """The image with predictions drawn as demo/image_demo.py draws them."""
    import torch
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.structures import InstanceData
    boxes, scores, labels, masks = (torch.from_numpy(np.asarray(a)) for a in prediction)
    sample = DetDataSample()
    sample.pred_instances = InstanceData(bboxes=boxes, scores=scores, labels=labels, masks=masks)
    visualizer = DetLocalVisualizer.get_instance('onnx_demo')
    visualizer.dataset_meta = dict(classes=classes, palette='random')
    visualizer.add_datasample(os.path.basename(out_file), image[..., ::-1], sample, draw_gt=False,
                              pred_score_thr=score_thr, out_file=out_file)


def main(argv=None):
    parser = argparse.ArgumentParser(description='Detect objects with an exported ONNX detector')
    parser.add_argument('inputs', help='an image, a folder of images or a quoted glob pattern')
    parser.add_argument('model', help='the .onnx file written by tools/deployment/export_onnx.py')
    parser.add_argument('--out-dir', default='outputs', help='where vis/ and preds/ go')
    parser.add_argument('--pred-score-thr', type=float, default=0.3,
                        help='draw predictions with at least this score (the JSON holds all)')
    parser.add_argument('--threads', type=int, help='ONNX Runtime intra-op threads')
    parser.add_argument('--no-save-vis', action='store_true', help='do not write drawn images')
    args = parser.parse_args(argv)
    files = collect_images(args.inputs)
    session, meta = load_session(args.model, args.threads)
    out = Path(args.out_dir)
    (out / 'preds').mkdir(parents=True, exist_ok=True)
    for path in files:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f'error: cannot read the image {path}')
        prediction = predict(session, meta, image)
        name = Path(path).name
        (out / 'preds' / f'{Path(name).stem}.json').write_text(json.dumps(to_json(*prediction)))
        if not args.no_save_vis:
            draw(image, prediction, meta['classes'], args.pred_score_thr, str(out / 'vis' / name))
    print(f'{len(files)} image(s) done, results in {out}')


if __name__ == '__main__':
    main()
