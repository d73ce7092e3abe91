"""Checkpoints named by URL, downloaded once by :func:`torch.hub.download_url_to_file`.

torch.hub and mmengine cache a download under its file name alone (``http://a/m.pth`` then
``http://b/m.pth`` gives a's weights) and wait forever on a silent server. Here the cache is keyed
by the whole URL, socket operations time out, a ``name-<sha256 prefix>.pth`` is verified, and the
cache file appears in one rename once its data is on disk.
"""
import hashlib
import os
import re
import socket
import urllib.error
import uuid
from pathlib import Path
from urllib.parse import urlparse

import torch
from mmengine.dist import barrier, get_dist_info

from ..utils.atomic_file import host_name

URL_PREFIXES = ('http://', 'https://')  # downloaded here
# every prefix mmengine_schemes.SCHEMES reads from off this machine
REMOTE_PREFIXES = URL_PREFIXES + ('s3://', 'petrel://', 'pavi://', 'modelzoo://', 'torchvision://',
                                  'open-mmlab://', 'openmmlab://', 'mmcls://')
# torch.hub's convention, with at least 8 digits: its own regex reads 'vit-b.pth' as hash 'b'
_HASH_IN_NAME = re.compile(r'-([a-f0-9]{8,64})\.')


class DownloadError(OSError):
    """A checkpoint URL could not be downloaded (unreachable, timed out, wrong hash)."""


def is_url(path):
    return isinstance(path, str) and path.startswith(URL_PREFIXES)


def cache_path(url):
    """Where ``url`` is cached: ``$TORCH_HOME/hub/checkpoints/<sha256(url)[:16]>-<file name>``."""
    name = os.path.basename(urlparse(url).path) or 'checkpoint.pth'
    return Path(torch.hub.get_dir(), 'checkpoints', f'{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}')


def fetch_url(url):
    """The local copy of ``url``, downloaded unless cached; in a distributed run rank 0 downloads
    while the others wait.

    Raises:
        DownloadError: naming the URL and the cause.
    """
    rank, world_size = get_dist_info()
    if rank == 0:
        path = _download(url)
    if world_size > 1:
        barrier()
    return path if rank == 0 else _download(url)


def _download(url):
    path = cache_path(url)
    if path.is_file():
        return path
    value = os.environ.get('MMDET_DINOV2_DOWNLOAD_TIMEOUT', '60')
    try:
        timeout = float(value)
    except ValueError:
        timeout = 0
    if not timeout > 0:
        raise ValueError(f'MMDET_DINOV2_DOWNLOAD_TIMEOUT={value!r}: give a positive number of seconds')
    match = _HASH_IN_NAME.search(path.name.split('-', 1)[1])  # the URL's file name
    path.parent.mkdir(parents=True, exist_ok=True)
    # torch.hub renames its download without an fsync (a power cut could publish an empty file)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}@{host_name()}.{uuid.uuid4().hex[:8]}.tmp')
    # torch.hub's urlopen takes no timeout: its sockets read the process default (other threads'
    # sockets opened meanwhile get it too)
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.download_url_to_file(url, str(tmp), match and match.group(1), progress=False)
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except RuntimeError as err:
        if 'invalid hash value' not in str(err):
            raise
        raise DownloadError(f'{url}: a corrupt or substituted download (not cached): its name says its '
                            f'SHA-256 starts with {match.group(1)}; torch.hub: {err}') from None
    except (TimeoutError, urllib.error.URLError) as err:
        reason = getattr(err, 'reason', err)
        if isinstance(reason, TimeoutError):
            raise DownloadError(f'{url}: no answer within {timeout:g} s (set '
                                'MMDET_DINOV2_DOWNLOAD_TIMEOUT to wait longer)') from err
        raise DownloadError(f'cannot download {url}: {reason}') from err
    finally:
        socket.setdefaulttimeout(previous_timeout)
        tmp.unlink(missing_ok=True)
    return path
