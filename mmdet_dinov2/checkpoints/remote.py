"""Checkpoints named by URL: downloaded once with a timeout, cached under the whole URL.

torch.hub's and mmengine's URL loaders cache a download under its file name alone, so
``http://a/model.pth`` and then ``http://b/model.pth`` silently give a's weights, and they open the
connection without a timeout, so a server that accepts and never answers blocks a run forever.
Here the cache file is named by a hash of the whole URL (plus the file name, for people browsing
the folder), every socket operation times out, a file name carrying a SHA-256 prefix
(``name-<hex>.pth``, torch.hub's convention) is verified, and a download is published atomically.
"""
import hashlib
import os
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import torch

from ..utils.atomic_file import atomic_open

__all__ = ['DownloadError', 'REMOTE_PREFIXES', 'cached_download', 'download_timeout',
           'is_url']

REMOTE_PREFIXES = ('http://', 'https://')
# torch.hub's convention: the first hex digits of the file's SHA-256 after the last '-'
_HASH_IN_NAME = re.compile(r'-([a-f0-9]{8,64})\.')
DEFAULT_TIMEOUT_S = 60


class DownloadError(OSError):
    """A checkpoint URL could not be downloaded (unreachable, timed out, wrong hash)."""


def is_url(path):
    return isinstance(path, str) and path.startswith(REMOTE_PREFIXES)


def download_timeout():
    """Seconds any one socket operation of a download may wait (``MMDET_DINOV2_DOWNLOAD_TIMEOUT``,
    default 60)."""
    value = os.environ.get('MMDET_DINOV2_DOWNLOAD_TIMEOUT', str(DEFAULT_TIMEOUT_S))
    try:
        timeout = float(value)
    except ValueError:
        timeout = -1.0
    if not timeout > 0:
        raise ValueError(f'MMDET_DINOV2_DOWNLOAD_TIMEOUT={value!r}: give a positive number of '
                         'seconds')
    return timeout


def cache_path(url, model_dir=None):
    """Where ``url`` is cached: ``<model_dir>/<sha256(url)[:16]>-<file name>``."""
    model_dir = Path(model_dir or os.path.join(torch.hub.get_dir(), 'checkpoints'))
    name = os.path.basename(urlparse(url).path) or 'checkpoint.pth'
    return model_dir / f'{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}'


def cached_download(url, model_dir=None, timeout=None, progress=False):
    """Download ``url`` unless it is cached already; return the local file.

    Args:
        url (str): ``http(s)://`` address.
        model_dir (str | None): cache folder (default ``$TORCH_HOME/hub/checkpoints``).
        timeout (float | None): seconds per socket operation (default :func:`download_timeout`).
        progress (bool): print the bytes received.

    Raises:
        DownloadError: naming the URL and the cause.
    """
    path = cache_path(url, model_dir)
    if path.is_file():
        return path
    timeout = download_timeout() if timeout is None else timeout
    match = _HASH_IN_NAME.search(os.path.basename(urlparse(url).path))
    digest = hashlib.sha256()
    try:
        request = urllib.request.Request(url, headers={'User-Agent': 'mmdet-dinov2'})
        with urllib.request.urlopen(request, timeout=timeout) as response, \
                atomic_open(path, 'wb') as out:
            received = 0
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
                if progress:
                    print(f'\r{url}: {received / 2**20:.1f} MiB', end='', flush=True)
            if match and not digest.hexdigest().startswith(match.group(1)):
                raise DownloadError(
                    f'{url}: the file\'s SHA-256 starts with {digest.hexdigest()[:len(match[1])]}, '
                    f'its name says {match.group(1)}: a corrupt or substituted download (not '
                    'cached)')
    except (socket.timeout, TimeoutError) as err:
        raise DownloadError(f'{url}: no answer within {timeout:g} s (set '
                            'MMDET_DINOV2_DOWNLOAD_TIMEOUT to wait longer)') from err
    except urllib.error.URLError as err:
        reason = getattr(err, 'reason', err)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise DownloadError(f'{url}: no answer within {timeout:g} s (set '
                                'MMDET_DINOV2_DOWNLOAD_TIMEOUT to wait longer)') from err
        raise DownloadError(f'cannot download {url}: {reason}') from err
    if progress:
        print()
    return path
