"""Stop a run before training when the backbone's pretrained file is missing, saying how to get it.

Training would otherwise build data loaders and the whole model before failing deep inside the
weight loading. tools/train.py calls :func:`check_pretrained_files` right after reading the config,
so the check also covers tools/dist_train.sh and tools/slurm_train.sh.
"""
import re
from pathlib import Path

from ..checkpoints import REMOTE_PREFIXES

DOWNLOAD_ROOT = 'https://dl.fbaipublicfiles.com/dinov2'
# dinov2_vits14_pretrain.pth, dinov2_vitg14_reg4_pretrain_14to16.pth, ...
DINOV2_FILE = re.compile(r'(?P<arch>dinov2_vit[sblg]14)(?P<reg>_reg4)?_pretrain(?P<converted>_14to16)?')


class MissingPretrainedError(FileNotFoundError):
    """A pretrained backbone file named in the config does not exist."""


def pretrained_paths(model_cfg):
    """The local pretrained files a model config asks its backbone to load.

    Args:
        model_cfg (dict): the ``model`` section of a config.

    Returns:
        list[tuple[str, str]]: (config key, path) for ``backbone.pretrained`` and a
        ``backbone.init_cfg`` of type ``Pretrained``; remote (URL) paths are left out.
    """
    backbone = model_cfg.get('backbone') or {}
    found = []
    if backbone.get('pretrained'):
        found.append(('model.backbone.pretrained', backbone['pretrained']))
    init_cfg = backbone.get('init_cfg') or {}
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        found.append(('model.backbone.init_cfg.checkpoint', init_cfg.get('checkpoint')))
    return [(key, str(path)) for key, path in found
            if path and not str(path).startswith(REMOTE_PREFIXES)]


def how_to_get(path):
    """Shell commands that download and convert the DINOv2 file ``path`` names, or '' if unknown."""
    match = DINOV2_FILE.search(Path(path).name)
    if match is None:
        return ''
    arch, reg = match['arch'], match['reg'] or ''
    raw = Path(path).with_name(f'{arch}{reg}_pretrain.pth')
    lines = [f'  mkdir -p {raw.parent}',
             f'  wget -P {raw.parent} {DOWNLOAD_ROOT}/{arch}/{raw.name}']
    if match['converted']:
        lines.append(f'  python tools/convert_14to16.py {raw}')
    return '\n'.join(lines)


def check_pretrained_files(cfg):
    """Raise :class:`MissingPretrainedError` when a pretrained file of ``cfg.model`` is missing.

    Args:
        cfg (mmengine.Config): the run's config (after ``--cfg-options``).
    """
    for key, path in pretrained_paths(cfg.get('model', {})):
        if Path(path).is_file():
            continue
        steps = how_to_get(path)
        fetch = (f'Download and convert it (from the repository root):\n{steps}\n'
                 if steps else 'Put the file there or point the config at it.\n')
        raise MissingPretrainedError(
            f'pretrained backbone weights not found: {path} ({key}).\n{fetch}'
            f'Or set another file with --cfg-options {key}=PATH (the raw 14-patch DINOv2 '
            f'file also loads), or {key}=None to start the backbone from random weights, e.g. '
            'when load_from gives the weights of a whole detector.')
