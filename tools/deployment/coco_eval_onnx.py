"""Score demo/onnx_demo.py's per-image JSON against COCO annotations with pycocotools (box and mask
AP), to set beside tools/test.py's figures for the same images.

    python tools/deployment/coco_eval_onnx.py ANN_FILE PREDS_DIR MODEL.onnx

PREDS_DIR holds NAME.json per image (``onnx_demo.py --out-dir DIR`` writes DIR/preds); an image
of ANN_FILE without a file there counts as having no detection. Labels map to the annotation's
categories by the class names stored in MODEL.onnx.
"""
import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import onnx
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_io import read_meta  # noqa: E402


def coco_results(coco, preds_dir, classes):
    """The predictions as COCO result dicts (bbox and segm, one list)."""
    by_name = {c['name']: c['id'] for c in coco.loadCats(coco.getCatIds())}
    missing = [c for c in classes if c not in by_name]
    if missing:
        raise SystemExit(f'error: classes {missing} of the model are not categories of the '
                         'annotation file')
    results = []
    for image in coco.loadImgs(coco.getImgIds()):
        path = Path(preds_dir) / f'{Path(image["file_name"]).stem}.json'
        if not path.is_file():
            continue
        pred = json.loads(path.read_text())
        for (x1, y1, x2, y2), score, label, rle in zip(pred['bboxes'], pred['scores'],
                                                        pred['labels'], pred['masks']):
            results.append(dict(image_id=image['id'], category_id=by_name[classes[label]],
                                bbox=[x1, y1, x2 - x1, y2 - y1], score=score, segmentation=rle))
    return results


def evaluate(ann_file, preds_dir, model):
    """{'bbox_mAP': ..., 'segm_mAP': ...} (COCO AP@[.5:.95], 0..1)."""
    classes = read_meta({p.key: p.value for p in onnx.load(model).metadata_props})['classes']
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(ann_file)
    results = coco_results(coco, preds_dir, classes)
    scores = {}
    for kind in ('bbox', 'segm'):
        with contextlib.redirect_stdout(io.StringIO()):
            dets = coco.loadRes([dict(r) for r in results]) if results else COCO()
            ev = COCOeval(coco, dets, kind)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        scores[f'{kind}_mAP'] = round(float(ev.stats[0]), 4)
    return scores


def main(argv=None):
    parser = argparse.ArgumentParser(description='COCO AP of onnx_demo.py predictions')
    parser.add_argument('ann_file')
    parser.add_argument('preds_dir')
    parser.add_argument('model', help='the .onnx file (for its class names)')
    args = parser.parse_args(argv)
    print(json.dumps(evaluate(args.ann_file, args.preds_dir, args.model)))


if __name__ == '__main__':
    main()
