"""Every checkpoint mmengine loads is read by :func:`~.io.load_checkpoint_file` (as
docs/architecture.md says): mmengine's own loaders fall back to ``torch.load(weights_only=False)``
and cache URLs by file name without a timeout. Model-zoo names resolve through mmengine's tables;
``pavi://`` is refused (no safe reader)."""
import io
import os
import os.path as osp
from collections import OrderedDict

from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import (CheckpointLoader, get_deprecated_model_names,
                                        get_external_models, get_mmcls_models,
                                        get_torchvision_models)

from .io import load_checkpoint_file
from .remote import URL_PREFIXES


def load_from_local(filename, map_location=None):
    return load_checkpoint_file(osp.expanduser(filename), map_location=map_location or 'cpu')


def load_from_http(filename, map_location=None):
    return load_checkpoint_file(filename, map_location=map_location or 'cpu')


def load_from_ceph(filename, map_location=None, backend='petrel'):
    backend = get_file_backend(filename, backend_args=dict(backend=backend))
    with io.BytesIO(backend.get(filename)) as buffer:
        buffer.name = filename
        return load_checkpoint_file(buffer, map_location=map_location or 'cpu')


def load_from_pavi(filename, map_location=None):
    raise NotImplementedError(f'{filename}: pavi:// checkpoints are not supported by '
                              "mmdet_dinov2's safe loader; download the file and give its local "
                              'path')


def load_from_torchvision(filename, map_location=None):
    return load_from_http(_zoo_url(get_torchvision_models(), filename), map_location)


def load_from_openmmlab(filename, map_location=None):
    url = _zoo_url(get_external_models(), filename, get_deprecated_model_names())
    if url.startswith(URL_PREFIXES):
        return load_from_http(url, map_location)
    home = os.path.expanduser(os.getenv('MMENGINE_HOME', os.path.join(
        os.getenv('XDG_CACHE_HOME', '~/.cache'), 'mmengine')))
    return load_from_local(osp.join(home, url), map_location)


def load_from_mmcls(filename, map_location=None):
    checkpoint = load_from_http(_zoo_url(get_mmcls_models(), filename), map_location)
    return dict(state_dict=OrderedDict((key[len('backbone.'):], value) for key, value
                                       in checkpoint.get('state_dict', checkpoint).items()
                                       if key.startswith('backbone.')))


def _zoo_url(table, filename, renamed=None):
    name = filename.split('://', 1)[1]
    name = (renamed or {}).get(name, name)
    if name not in table:
        raise KeyError(f'{filename}: no model named {name!r} in mmengine\'s model table')
    return table[name]


# prefix(es) -> loader: mmengine 0.10's prefixes, so that none of its loaders stays reachable
SCHEMES = (('', load_from_local), (URL_PREFIXES, load_from_http),
           ((r'(\S+\:)?s3://', r'(\S+\:)?petrel://'), load_from_ceph), ('pavi://', load_from_pavi),
           (('modelzoo://', 'torchvision://'), load_from_torchvision),
           (('open-mmlab://', 'openmmlab://'), load_from_openmmlab), ('mmcls://', load_from_mmcls))


def register():
    """Make mmengine's CheckpointLoader use the loaders above (idempotent)."""
    for prefixes, loader in SCHEMES:
        CheckpointLoader.register_scheme(prefixes, loader, force=True)
