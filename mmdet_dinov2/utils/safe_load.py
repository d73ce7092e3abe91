"""Close mmengine's unsafe fallback: every checkpoint mmengine loads goes through the safe loader.

mmengine 0.10's ``mmengine.runner.checkpoint._safe_torch_load`` (behind ``load_checkpoint``,
``Runner(load_from=...)``, ``resume`` and ``init_cfg=dict(type='Pretrained')``) retries a refused
file with ``torch.load(weights_only=False)``, and its ``http(s)://`` loader never tries a safe load
at all: a ``.pth`` holding a pickle payload runs its code. :func:`install` (called when
``mmdet_dinov2`` is imported) replaces both with loaders that read files through
:mod:`mmdet_dinov2.checkpoints.io`: a file needing a global outside the allow-list raises
:class:`~mmdet_dinov2.checkpoints.UnsafeCheckpointError` naming the file and the global, unless the
user turned trust on (:mod:`mmdet_dinov2.utils.checkpoint_trust`). ``.safetensors`` files load too.
"""
import os
from urllib.parse import urlparse

import torch

from ..checkpoints import io as ckpt_io
from .checkpoint_trust import checkpoints_trusted

__all__ = ['install', 'safe_torch_load', 'safe_load_url']


def safe_torch_load(file, map_location=None, weights_only=None):
    """Drop-in for mmengine's ``_safe_torch_load`` that refuses unsafe pickles unless trusted.

    Args:
        file (str | PathLike | file-like): a checkpoint path (``.pth``/``.pt``/``.safetensors``) or
            an open binary buffer (what mmengine's remote backends pass).
        map_location: as :func:`torch.load` (default: the CPU).
        weights_only: ignored: loading is safe unless the user turned trust on.

    Returns:
        The whole checkpoint object (not unwrapped: ``resume`` needs its meta and optimizer).
    """
    return ckpt_io.load_checkpoint_file(file, trust=checkpoints_trusted(),
                                        map_location=map_location or 'cpu')


def safe_load_url(url, model_dir=None, map_location=None, progress=True, **kwargs):
    """Drop-in for mmengine's ``load_url``: download once into the torch hub cache, load safely.

    Args:
        url (str): ``http(s)://`` (or ``file://``) address of a checkpoint.
        model_dir (str | None): cache folder (default ``$TORCH_HOME/hub/checkpoints``).
        map_location: as :func:`torch.load`.
        progress (bool): show a download progress bar.
        **kwargs: ``check_hash`` / ``file_name`` as in :func:`torch.hub.load_state_dict_from_url`.
    """
    model_dir = model_dir or os.path.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    file_name = kwargs.get('file_name') or os.path.basename(urlparse(url).path)
    cached = os.path.join(model_dir, file_name)
    if not os.path.exists(cached):
        hash_prefix = None
        if kwargs.get('check_hash'):
            match = torch.hub.HASH_REGEX.search(file_name)
            hash_prefix = match.group(1) if match else None
        torch.hub.download_url_to_file(url, cached, hash_prefix, progress=progress)
    return safe_torch_load(cached, map_location=map_location)


def install():
    """Route mmengine's checkpoint loading through :func:`safe_torch_load` (idempotent)."""
    from mmengine.runner import checkpoint as mmengine_checkpoint
    mmengine_checkpoint._safe_torch_load = safe_torch_load
    mmengine_checkpoint.load_url = safe_load_url
