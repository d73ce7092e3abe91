"""The full content of a config as a flat, comparable mapping, and the reference dumps of it.

``flatten(merged(path))`` maps every leaf of the merged config to its dotted path:
``model.backbone.embed_dim``, ``train_pipeline.3.transforms.0.0.scales.2`` (list and tuple items
by index); an empty dict or list is a leaf of its own. Tuples stay tuples, so a tuple that became
a list (or the reverse) is a difference.

The reference dumps under ``reference_dumps/`` hold the configs' content as one ``_base_`` file
(model, data, schedule, hooks and runner settings together) gave it; ``test_config_dumps.py``
compares the configs, whose bases are split by concern, against them, each with its backbone's
``arch`` preset expanded into the keys it stands for (:func:`merged`).
A size config's dump is its merged content as a nested Python literal; the layer-decay sweep,
seven configs that differ from the S config in one value each, is stored as those differences
(``layer_decay_sweep.txt``). Capture again only for a deliberate change of a config's content, and
say so in the commit:

    .venv/bin/python tests/configs/config_dump.py
"""
import ast
import pprint
import sys
from pathlib import Path

from mmengine.config import Config

from mmdet_dinov2.models.backbones.archs import expand_arch

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_DIR = Path(__file__).resolve().parent / 'reference_dumps'
SIZE_CONFIGS = sorted((ROOT / 'configs' / 'vit_adapter').glob('mask-rcnn_dinov2-adapter-?_fpn_3x_coco.py'))
SWEEP_CONFIGS = sorted((ROOT / 'configs' / 'vit_adapter' / 'layer_decay').glob('*.py'))
SWEEP_BASE = ROOT / 'configs' / 'vit_adapter' / 'mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py'
SWEEP_FILE = REFERENCE_DIR / 'layer_decay_sweep.txt'
DUMPED = SIZE_CONFIGS + SWEEP_CONFIGS  # the configs whose content the reference pins


def flatten(value, prefix=''):
    """``{dotted path: leaf}`` of a config, a dict, a list or a tuple."""
    if isinstance(value, Config):
        value = value.to_dict()
    if isinstance(value, dict) and value:
        items = ((str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple)) and value:
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: {} if isinstance(value, dict) else value}
    flat = {}
    for key, item in items:
        path = f'{prefix}.{key}' if prefix else key
        flat.update(flatten(item, path))
        if isinstance(item, tuple) and item:  # keep the container type visible
            flat[path] = ('tuple', len(item))
    return flat


def merged(path):
    """The merged content of a config as a dict, its backbone's ``arch`` expanded."""
    content = Config.fromfile(str(path)).to_dict()
    content['model']['backbone'] = expand_arch(content['model']['backbone'])
    return content


def _literal(path):
    return ast.literal_eval(Path(path).read_text())


def _size_reference_path(config_path):
    return REFERENCE_DIR / (Path(config_path).stem + '.txt')


def load_reference(config_path):
    """The flattened reference content of one of ``DUMPED``."""
    config_path = Path(config_path)
    if config_path in SIZE_CONFIGS:
        return flatten(_literal(_size_reference_path(config_path)))
    changed = _literal(SWEEP_FILE)[config_path.name]
    return {**load_reference(SWEEP_BASE), **changed}


def _write(path, header, content):
    text = header + pprint.pformat(content, width=100, compact=True) + '\n'
    assert ast.literal_eval(text) == content, f'{path}: holds values that are not Python literals'
    path.write_text(text)


def capture():
    REFERENCE_DIR.mkdir(exist_ok=True)
    for path in SIZE_CONFIGS:
        content = merged(path)
        _write(_size_reference_path(path),
               f'# The merged content of {path.relative_to(ROOT)} (tests/configs/config_dump.py).\n',
               content)
    base = flatten(_literal(_size_reference_path(SWEEP_BASE)))
    sweep = {}
    for path in SWEEP_CONFIGS:
        flat = flatten(merged(path))
        assert flat.keys() == base.keys(), f'{path}: keys differ from {SWEEP_BASE.name}'
        sweep[path.name] = {k: v for k, v in flat.items() if base[k] != v}
    _write(SWEEP_FILE, f'# configs/vit_adapter/layer_decay/*.py: what differs from {SWEEP_BASE.name}\n'
           '# (tests/configs/config_dump.py).\n', sweep)
    for path in DUMPED:
        assert load_reference(path) == flatten(merged(path)), path
    print(f'{len(DUMPED)} configs captured under {REFERENCE_DIR.relative_to(ROOT)}')


if __name__ == '__main__':
    sys.exit(capture())
