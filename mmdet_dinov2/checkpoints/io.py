"""Reading and writing checkpoint files without running code hidden in them: read with
``torch.load(weights_only=True)`` and the allow-list of :mod:`.allowlist`; a file that needs more is
refused with :class:`UnsafeCheckpointError` unless trusted (:mod:`.trust`)."""
import errno
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ..utils.atomic_file import atomic_open
from .allowlist import RefusedLookupError, exactly_these_globals, safe_globals
from .remote import fetch_url, is_url
from .trust import checkpoints_trusted

# what torch's weights-only refusals name: a GLOBAL `module.name`, a type built or a function called
_GLOBAL_IN_MESSAGE = re.compile(r'GLOBAL ([A-Za-z_][\w.]*\.[A-Za-z_]\w*)')
_REFUSED_IN_MESSAGE = re.compile(
    r"(?:Can only (?:build|create new object)[^\n]*but got <class '([\w.]+)'>"
    r"|unrecognized function <(?:function|built-in function|class) '?([\w.]+))")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read as a state dict (empty, truncated, no checkpoint)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint whose pickle needs ``global_names`` (``module.name``) outside the allow-list."""

    def __init__(self, path, global_names, detail=''):
        self.path, self.global_names = str(path), list(global_names)
        super().__init__(
            f'refusing to load {self.path}: its pickle needs {", ".join(self.global_names)}'
            f'{f" ({detail})" if detail else ""}, which is not on the allow-list of tensors, '
            'containers, numpy values and mmengine logging types; unpickling it could run '
            'arbitrary code. Pass trust=True / --trust-checkpoint only for a file you trust (in a '
            'config: trust_checkpoint = True).')


def load_state_dict_file(path, *, trust=False):
    """The state dict (tensors on the CPU) of a ``.pth``/``.pt``/``.safetensors`` file, read as
    :func:`load_checkpoint_file` does, unwrapped from ``{'state_dict': ...}``/``{'model': ...}``
    and without DataParallel's ``module.`` prefix.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the pickle needs a global outside the allow-list (and not trusted).
        CheckpointError: empty, truncated or corrupt file, or content that is no state dict.
    """
    obj = load_checkpoint_file(path, trust=trust)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f'{path} holds a {type(obj).__name__}, not a state dict (a mapping '
                              'of parameter names to tensors)')
    for key in ('state_dict', 'model', 'module'):  # training frameworks' wrappers, outermost first
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not obj:
        raise CheckpointError(f'{path} holds an empty state dict')
    if all(key.startswith('module.') for key in obj):
        obj = {key[len('module.'):]: value for key, value in obj.items()}
    not_tensors = [key for key, value in obj.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f'{path} is not a state dict: {len(not_tensors)} entries are not tensors, e.g. '
            f'{not_tensors[0]!r} ({type(obj[not_tensors[0]]).__name__}); top-level keys: '
            f'{list(obj)[:8]}')
    return dict(obj)


def load_checkpoint_file(file, *, trust=False, map_location='cpu'):
    """A whole checkpoint object (meta, optimizer, ... kept), read safely; raises as
    :func:`load_state_dict_file`.

    Args:
        file (str | PathLike | file-like): a ``.pth``/``.pt``/``.safetensors`` path, an
            ``http(s)://`` URL (downloaded once, :func:`~.remote.fetch_url`), or a binary buffer
            holding a ``torch.save`` pickle (what mmengine's remote backends give).
        trust (bool): load with ``weights_only=False``, only for a file you trust; also on inside
            :func:`~.trust.trusted_checkpoints`.
        map_location: as :func:`torch.load` (``.safetensors``: a device).
    """
    name = None
    if is_url(file):
        url, file = file, fetch_url(file)
        name = f'{file} (downloaded from {url})'
    if isinstance(file, (str, os.PathLike)):
        path = Path(file)
        _check_is_file(path)
        if path.stat().st_size == 0:
            raise CheckpointError(f'checkpoint file is empty (0 bytes): {name or path}; download '
                                  'it again')
        if path.suffix == '.safetensors':
            from safetensors import SafetensorError
            from safetensors.torch import load_file
            try:
                return load_file(str(path), device=str(map_location))
            except (SafetensorError, OSError) as err:
                raise CheckpointError(
                    f'cannot read {path} as safetensors (truncated or corrupt?): {err}') from err
    return _load_pickle(file, trust or checkpoints_trusted(), map_location, name)


def _check_is_file(path):
    try:
        path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise CheckpointError(f'checkpoint path {path} is a loop of symbolic links; point it '
                                  'at the real file') from None
        if path.is_symlink():
            raise FileNotFoundError(f'checkpoint file not found: {path} is a symbolic link to '
                                    f'{os.readlink(path)}, which does not exist') from None
        raise FileNotFoundError(f'checkpoint file not found: {path}') from None
    if path.is_dir():
        found = sorted(p.name for p in path.glob('*.pth'))[:5]
        hint = f' (it holds {", ".join(found)})' if found else ''
        raise CheckpointError(f'checkpoint path {path} is a directory, not a file{hint}; give '
                              'the checkpoint file itself')
    if not path.is_file():
        raise CheckpointError(f'checkpoint path {path} is not a regular file')


def _load_pickle(file, trust, map_location, name):
    is_path = isinstance(file, (str, os.PathLike))
    name = name or (file if is_path else getattr(file, 'name', '<buffer>'))
    start = None if is_path else file.tell()
    allowed = safe_globals()
    try:
        with exactly_these_globals(allowed):
            return torch.load(file, map_location=map_location, weights_only=not trust)
    except Exception as err:  # torch raises many types for bad files; each is reported below
        message = str(err)
        if not trust and RefusedLookupError.marker in message:
            detail = message[message.index(RefusedLookupError.marker):].splitlines()[0]
            raise UnsafeCheckpointError(name, ['builtins.getattr'], detail) from None
        if not trust and 'Weights only load failed' in message:
            if start is not None:
                file.seek(start)
            if unsafe := _unsafe_globals(file, message, allowed):
                raise UnsafeCheckpointError(name, unsafe) from None
        first = next((line.strip()[:300] for line in message.splitlines() if line.strip()),
                     repr(err))
        raise CheckpointError(
            f'cannot read {name} as a PyTorch checkpoint (truncated, corrupt, or not a '
            f'checkpoint): {type(err).__name__}: {first}') from err


def _unsafe_globals(file, message, allowed):
    """The globals that made a weights-only load fail (none found: it failed for another reason)."""
    try:  # a zip checkpoint can be scanned without unpickling anything
        with exactly_these_globals(allowed):
            found = torch.serialization.get_unsafe_globals_in_checkpoint(file)
        if found:
            return sorted(found)
    except (ValueError, RuntimeError):  # legacy (non-zip) format or unreadable zip
        pass
    named = set(_GLOBAL_IN_MESSAGE.findall(message))
    return sorted(named | {name for match in _REFUSED_IN_MESSAGE.findall(message)
                           for name in match if name})


def save_state_dict_file(obj, path):
    """Write ``obj`` (a flat tensor dict for ``.safetensors``, else anything ``torch.save`` takes)
    to ``path`` atomically (:func:`~mmdet_dinov2.utils.atomic_open`): a crash leaves the old file
    or none, never a truncated one."""
    with atomic_open(path, 'wb') as f:
        if Path(path).suffix == '.safetensors':
            from safetensors.torch import save
            f.write(save({key: value.contiguous() for key, value in obj.items()}))
        else:
            torch.save(obj, f)
