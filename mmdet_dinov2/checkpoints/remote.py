"""Checkpoints named by URL, downloaded once into torch.hub's cache directory. Not torch.hub's or
mmengine's download, which key the cache by file name alone (``http://a/m.pth`` then
``http://b/m.pth`` gives a's weights), wait forever on a silent or trickling server and cache what
a connection cut short: here the cache is keyed by the whole URL, socket reads time out, the whole
download has a deadline, and it is cached in one rename once its length (Content-Length), the hash
in its name and its first bytes (an HTML page is no checkpoint) check out (docs/reliability.md)."""
import hashlib
import os
import re
import threading
import urllib.request
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
# seconds (environment variable, default): for each socket operation, for the whole download
TIMEOUT, DEADLINE = ('MMDET_DINOV2_DOWNLOAD_TIMEOUT', 60), ('MMDET_DINOV2_DOWNLOAD_DEADLINE', 3600)


class DownloadError(OSError):
    """A checkpoint URL could not be downloaded (unreachable, timed out, cut short, wrong hash,
    not a checkpoint)."""


def is_url(path):
    return isinstance(path, str) and path.startswith(URL_PREFIXES)


def cache_path(url):
    """Where ``url`` is cached: ``$TORCH_HOME/hub/checkpoints/<sha256(url)[:16]>-<file name>``."""
    name = os.path.basename(urlparse(url).path) or 'checkpoint.pth'
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(torch.hub.get_dir(), 'checkpoints', f'{key}-{name}')


def fetch_url(url):
    """The local copy of ``url``, downloaded unless cached (a :class:`DownloadError` names the URL
    and the cause); in a distributed run rank 0 downloads while the others wait."""
    rank, world_size = get_dist_info()
    path = _download(url) if rank == 0 else None
    if world_size > 1:
        barrier()
    return path or _download(url)


def checkpoint_format(head):
    """The format the first bytes of a file announce: 'zip' (``torch.save``), 'pickle' (torch's
    legacy format), 'safetensors' (a little-endian header length, then its JSON), or None."""
    if head.startswith(b'PK\x03\x04'):
        return 'zip'
    if head[:1] == b'\x80' and head[1:2] in (b'\x02', b'\x03', b'\x04', b'\x05'):
        return 'pickle'
    return 'safetensors' if head[8:9] == b'{' else None


def _seconds(name, default):
    value = os.environ.get(name, str(default))
    try:
        if float(value) > 0:
            return float(value)
    except ValueError:
        pass
    raise ValueError(f'{name}={value!r}: give a positive number of seconds')


def _download(url):
    path = cache_path(url)
    if path.is_file():
        return path
    timeout, deadline = _seconds(*TIMEOUT), _seconds(*DEADLINE)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}@{host_name()}.{uuid.uuid4().hex[:8]}.tmp')
    # the transfer runs in a thread so that the deadline holds however slowly bytes arrive (a
    # socket timeout bounds each read only); a thread left behind stops at its next read and
    # closes the file, which is opened here so that it cannot appear after its removal below
    result, stop = {'size': 0}, threading.Event()
    worker = threading.Thread(target=_transfer, args=(url, open(tmp, 'wb'), timeout, stop, result),
                              daemon=True)
    worker.start()
    worker.join(deadline)
    stop.set()
    try:
        if worker.is_alive():
            raise DownloadError(
                f'{url}: not downloaded within {deadline:g} s ({result["size"]:,} bytes '
                f'received); set {DEADLINE[0]} to allow longer. Nothing was cached')
        if 'error' in result:
            raise result['error']
        size, length = result['size'], result['length']
        if length is not None and length.isdigit() and size != int(length):
            raise DownloadError(f'{url}: the connection ended after {size:,} of {int(length):,} '
                                'bytes (Content-Length); nothing was cached, try again')
        match = _HASH_IN_NAME.search(path.name.split('-', 1)[1])  # the URL's file name
        if match and not result['sha256'].startswith(match.group(1)):
            raise DownloadError(f'{url}: a corrupt or substituted download (not cached): its name '
                                f'says its SHA-256 starts with {match.group(1)}, the data\'s is '
                                f'{result["sha256"]}')
        with open(tmp, 'rb') as f:
            head = f.read(64)
        if checkpoint_format(head) is None:
            raise DownloadError(
                f'{url} is not a checkpoint: the server sent {size:,} bytes of {result["type"]} '
                f'starting {head[:40]!r} (a login, error or download page?); nothing was cached. '
                'Check the URL: it must give the checkpoint file itself (a .pth or .safetensors)')
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _transfer(url, f, timeout, stop, result):
    """Write ``url`` into the file ``f`` and close it; ``result`` gets its size, SHA-256, headers
    or the error."""
    digest = hashlib.sha256()
    try:
        with f, urllib.request.urlopen(url, timeout=timeout) as response:
            result['length'] = response.headers.get('Content-Length')
            result['type'] = response.headers.get_content_type()
            while not stop.is_set() and (chunk := response.read1(1 << 20)):
                f.write(chunk)
                digest.update(chunk)
                result['size'] += len(chunk)
            f.flush()
            os.fsync(f.fileno())  # the rename publishes data on disk, also after a power cut
        result['sha256'] = digest.hexdigest()
    except Exception as err:  # this thread hands every failure to the caller
        reason = getattr(err, 'reason', err)  # URLError wraps the cause
        result['error'] = DownloadError(
            f'{url}: no answer within {timeout:g} s (set {TIMEOUT[0]} to wait longer)'
            if isinstance(reason, TimeoutError) else f'cannot download {url}: {reason}')
        result['error'].__cause__ = err
