"""What runs around an exported detector, in numpy and OpenCV only (no torch, no mmdet): the
pre-processing of mmdet's test pipeline for one image and the mask pasting of its
``FCNMaskHead``. ``export_onnx.py`` writes the settings into the file's metadata
(:data:`META_KEYS`); ``demo/onnx_demo.py`` reads them back.

Pre-processing (mmdet's ``Resize(keep_ratio=True)`` + ``DetDataPreprocessor``): scale the image as
large as fits the pipeline's ``scale`` (long and short side) and the exported input (H, W),
bilinear (cv2), BGR -> RGB, ``(x - mean) / std``, zero padding at the bottom and right to (H, W).
"""
import json
from typing import Dict, Tuple

import cv2
import numpy as np

META_KEYS = ('classes', 'mean', 'std', 'bgr_to_rgb', 'resize_scale', 'input_shape')


def read_meta(custom_metadata_map: Dict[str, str]) -> dict:
    """The export settings from an ONNX file's metadata (``session.get_modelmeta()``)."""
    missing = [k for k in META_KEYS if k not in custom_metadata_map]
    if missing:
        raise ValueError(f'the ONNX file lacks the metadata {missing}: export it with '
                         'tools/deployment/export_onnx.py')
    return {k: json.loads(custom_metadata_map[k]) for k in META_KEYS}


def resize_factor(image_hw: Tuple[int, int], resize_scale, input_shape) -> float:
    """The keep-ratio scale factor: the largest that fits ``resize_scale`` (long, short side, in
    either order) and the network input ``input_shape`` (H, W)."""
    h, w = image_hw
    long_side, short_side = max(resize_scale), min(resize_scale)
    factor = min(long_side / max(h, w), short_side / min(h, w))
    return min(factor, input_shape[0] / h, input_shape[1] / w)


def preprocess(image: np.ndarray, meta: dict) -> Tuple[np.ndarray, np.ndarray, Tuple[float, float]]:
    """One BGR uint8 image (h, w, 3) -> the network input (1, 3, H, W) float32, the resized size
    (2,) float32 (h', w') and the scale factors (w'/w, h'/h) to map boxes back."""
    h, w = image.shape[:2]
    factor = resize_factor((h, w), meta['resize_scale'], meta['input_shape'])
    size = (min(int(w * factor + 0.5), meta['input_shape'][1]),
            min(int(h * factor + 0.5), meta['input_shape'][0]))  # (w', h') as mmcv rounds
    resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR).astype(np.float32)
    if meta['bgr_to_rgb']:
        resized = resized[..., ::-1]
    resized = (resized - np.float32(meta['mean'])) / np.float32(meta['std'])
    batch = np.zeros((1, 3, *meta['input_shape']), np.float32)
    batch[0, :, :size[1], :size[0]] = resized.transpose(2, 0, 1)
    return batch, np.float32([size[1], size[0]]), (size[0] / w, size[1] / h)


def _bilinear_matrix(coords: np.ndarray, size: int) -> np.ndarray:
    """(n, size) weights that sample a length-``size`` signal at ``coords`` (pixel centres at
    integers) bilinearly, zero outside: one axis of ``grid_sample(align_corners=False)``."""
    low = np.floor(coords)
    frac = (coords - low).astype(np.float32)
    out = np.zeros((len(coords), size), np.float32)
    rows = np.arange(len(coords))
    for index, weight in ((low, 1 - frac), (low + 1, frac)):
        inside = (index >= 0) & (index < size)
        out[rows[inside], index[inside].astype(int)] += weight[inside]
    return out


def paste_masks(masks: np.ndarray, boxes: np.ndarray, image_hw: Tuple[int, int],
                threshold: float = 0.5) -> np.ndarray:
    """Masks (N, S, S) of probabilities over their boxes (N, 4) -> (N, h, w) bool image masks, as
    mmdet's ``_do_paste_mask`` samples them (bilinear, box edges at pixel borders) and thresholds
    them (``mask_thr_binary``)."""
    h, w = image_hw
    out = np.zeros((len(masks), h, w), bool)
    for mask, (x0, y0, x1, y1), canvas in zip(masks, boxes, out):
        # the pixels around the box (mmdet's skip_empty region); outside it the sample is 0
        left, top = max(int(np.floor(x0)) - 1, 0), max(int(np.floor(y0)) - 1, 0)
        right, bottom = min(int(np.ceil(x1)) + 1, w), min(int(np.ceil(y1)) + 1, h)
        if right <= left or bottom <= top:
            continue
        s_y, s_x = mask.shape
        # pixel centre -> [-1, 1] over the box -> mask pixel coordinate
        gx = ((np.arange(left, right) + 0.5 - x0) / max(x1 - x0, 1e-12) * 2 - 1 + 1) * s_x / 2 - 0.5
        gy = ((np.arange(top, bottom) + 0.5 - y0) / max(y1 - y0, 1e-12) * 2 - 1 + 1) * s_y / 2 - 0.5
        sampled = _bilinear_matrix(gy, s_y) @ mask.astype(np.float32) @ _bilinear_matrix(gx, s_x).T
        canvas[top:bottom, left:right] = sampled >= threshold
    return out
