"""Checkpoints named by URL: downloaded once by :func:`torch.hub.download_url_to_file`, with a
timeout, cached under the whole URL.

torch.hub's and mmengine's URL loaders cache a download under its file name alone (``http://a/m.pth``
then ``http://b/m.pth`` silently gives a's weights) and wait forever on a server that accepts and never
answers. Here the cache file is named by a hash of the whole URL plus the file name, every socket
operation times out, a name carrying a SHA-256 prefix (``name-<hex>.pth``) is verified, and the cache
file appears in one rename once its data is on disk.
"""
import contextlib
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

__all__ = ['DownloadError', 'REMOTE_PREFIXES', 'URL_PREFIXES', 'cached_download', 'download_timeout',
           'fetch_url', 'is_url']

URL_PREFIXES = ('http://', 'https://')  # downloaded here
# every prefix mmengine_schemes.SCHEMES reads from off this machine
REMOTE_PREFIXES = URL_PREFIXES + ('s3://', 'petrel://', 'pavi://', 'modelzoo://', 'torchvision://',
                                  'open-mmlab://', 'openmmlab://', 'mmcls://')
# torch.hub's convention, with at least 8 digits: its own regex reads 'vit-b.pth' as hash 'b'
_HASH_IN_NAME = re.compile(r'-([a-f0-9]{8,64})\.')
DEFAULT_TIMEOUT_S = 60


class DownloadError(OSError):
    """A checkpoint URL could not be downloaded (unreachable, timed out, wrong hash)."""


def is_url(path):
    return isinstance(path, str) and path.startswith(URL_PREFIXES)


def download_timeout():
    """Seconds any one socket operation of a download may wait (``MMDET_DINOV2_DOWNLOAD_TIMEOUT``,
    default 60)."""
    value = os.environ.get('MMDET_DINOV2_DOWNLOAD_TIMEOUT', str(DEFAULT_TIMEOUT_S))
    with contextlib.suppress(ValueError):
        if float(value) > 0:
            return float(value)
    raise ValueError(f'MMDET_DINOV2_DOWNLOAD_TIMEOUT={value!r}: give a positive number of seconds')


def cache_path(url, model_dir=None):
    """Where ``url`` is cached: ``<model_dir>/<sha256(url)[:16]>-<file name>``."""
    model_dir = Path(model_dir or os.path.join(torch.hub.get_dir(), 'checkpoints'))
    name = os.path.basename(urlparse(url).path) or 'checkpoint.pth'
    return model_dir / f'{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}'


def fetch_url(url, model_dir=None):
    """The local copy of a checkpoint URL (:func:`cached_download`); in a distributed run rank 0
    downloads while the others wait."""
    rank, world_size = get_dist_info()
    if rank == 0:
        path = cached_download(url, model_dir)
    if world_size > 1:
        barrier()
        if rank > 0:
            path = cached_download(url, model_dir)
    return path


def cached_download(url, model_dir=None, timeout=None, progress=False):
    """Download ``url`` unless it is cached already; return the local file.

    Args:
        url (str): ``http(s)://`` address.
        model_dir (str | None): cache folder (default ``$TORCH_HOME/hub/checkpoints``).
        timeout (float | None): seconds per socket operation (default :func:`download_timeout`).
        progress (bool): show a progress bar (stderr).

    Raises:
        DownloadError: naming the URL and the cause.
    """
    path = cache_path(url, model_dir)
    if path.is_file():
        return path
    timeout = download_timeout() if timeout is None else timeout
    match = _HASH_IN_NAME.search(os.path.basename(urlparse(url).path))
    path.parent.mkdir(parents=True, exist_ok=True)
    # torch.hub renames its download without an fsync (a power cut could then publish an empty
    # cache file): it writes a temporary name, which becomes the cache file here after an fsync
    tmp = path.with_name(f'.{path.name}.{os.getpid()}@{host_name()}.{uuid.uuid4().hex[:8]}.tmp')
    # torch.hub's urlopen takes no timeout: its sockets read the process default, set for the
    # download (sockets that other threads open meanwhile get it too)
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.download_url_to_file(url, str(tmp), match and match.group(1), progress)
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

