"""The images a demo's INPUTS argument names, shared by demo/image_demo.py and demo/onnx_demo.py.
Standard library only: the ONNX demo runs without torch or mmdet."""
import glob
import os.path as osp
from collections import Counter
from os import listdir

GLOB_CHARACTERS = '*?['


def collect_inputs(inputs, extensions, is_url=lambda path: False):
    """The images INPUTS names: a file or URL as it is, a folder's images (not recursive, names
    ending in one of ``extensions``) or a glob pattern expanded, sorted.

    Raises:
        FileNotFoundError: nothing by that name, or a folder or pattern without any image.
        ValueError: two images whose outputs would overwrite each other: the same file name
            (drawn images keep it) or the same name without its suffix (``photo.jpg`` and
            ``photo.png`` both predict into ``preds/photo.json``).
    """
    if osp.isfile(inputs) or is_url(inputs):
        return inputs
    if osp.isdir(inputs):
        files = sorted(osp.join(inputs, name) for name in listdir(inputs)
                       if name.lower().endswith(extensions) and osp.isfile(osp.join(inputs, name)))
        if not files:
            raise FileNotFoundError(f'the folder {inputs} holds no image ({", ".join(extensions)})')
    elif any(c in inputs for c in GLOB_CHARACTERS):
        files = sorted(p for p in glob.glob(inputs, recursive=True) if osp.isfile(p))
        if not files:
            raise FileNotFoundError(f'the pattern {inputs} matches no file')
    else:
        raise FileNotFoundError(f'no image or folder {inputs}')
    for key, what in ((osp.basename, 'file name'),
                      (lambda p: osp.splitext(osp.basename(p))[0], 'name without its suffix')):
        counts = Counter(map(key, files))
        clash = next((name for name, n in counts.items() if n > 1), None)
        if clash is not None:
            pair = [p for p in files if key(p) == clash][:2]
            raise ValueError(f'{" and ".join(pair)} have the same {what}: their outputs '
                             'would overwrite each other; rename one or run once per folder')
    return files
