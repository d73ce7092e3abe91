"""Reading and writing checkpoint files without running code hidden in them.

A ``.pth`` file is a pickle: loading it with ``weights_only=False`` can run any code its author
wrote. Files here are read with ``torch.load(weights_only=True)`` and an allow-list that admits
what mmengine/mmdet checkpoints legitimately hold (``HistoryBuffer``, numpy arrays and scalars);
a file that needs anything else is refused with :class:`UnsafeCheckpointError` unless the caller
says the file is trusted.
"""
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

__all__ = ['CheckpointError', 'UnsafeCheckpointError', 'load_checkpoint_file',
           'load_state_dict_file', 'save_state_dict_file']

# The wrappers that training frameworks put around a state dict, in the order they are unwrapped.
WRAPPER_KEYS = ('state_dict', 'model', 'module')
# A global named in torch's weights-only refusal: `module.name` (a truncated file gives garbage).
_GLOBAL_IN_MESSAGE = re.compile(r'GLOBAL ([A-Za-z_][\w.]*\.[A-Za-z_]\w*)')
# the weights-only unpickler's other refusals: building or calling a type/function not allowed
_REFUSED_IN_MESSAGE = re.compile(
    r"(?:Can only (?:build|create new object)[^\n]*but got <class '([\w.]+)'>"
    r"|unrecognized function <(?:function|built-in function|class) '?([\w.]+))")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read as a state dict (empty, truncated, not a checkpoint)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint whose pickle needs a global outside the allow-list: loading it may run code.

    Args:
        path (str): the file.
        global_names (list[str]): the offending globals, as ``module.name``.
        detail (str): what exactly was refused, when more than a global's name tells it.
    """

    def __init__(self, path, global_names, detail=''):
        self.path = str(path)
        self.global_names = list(global_names)
        super().__init__(
            f'refusing to load {self.path}: its pickle needs {", ".join(self.global_names)}'
            f'{f" ({detail})" if detail else ""}, which is not on the allow-list of tensors, '
            'containers, numpy values and mmengine logging types; unpickling it could run '
            'arbitrary code. Pass trust=True / --trust-checkpoint only for a file you trust (in a '
            'config: trust_checkpoint = True).')


def load_state_dict_file(path, *, trust=False):
    """Read a state dict from a ``.pth``/``.pt`` or ``.safetensors`` file, safely.

    Wrapped checkpoints (mmengine/mmdet ``{'meta', 'state_dict', ...}``, ``{'model': ...}``) are
    unwrapped, and a ``module.`` prefix that DataParallel leaves on every key is removed.

    Args:
        path (str | Path): the checkpoint file.
        trust (bool): load with ``weights_only=False``: only for a file you trust, since its
            pickle may run code.

    Returns:
        dict[str, Tensor]: the state dict, on the CPU.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the pickle needs a global outside the allow-list (and not trust).
        CheckpointError: empty, truncated or corrupt file, or content that is no state dict.
    """
    return _unwrap(load_checkpoint_file(path, trust=trust), path)


def load_checkpoint_file(file, *, trust=False, map_location='cpu'):
    """Read a whole checkpoint object (meta, optimizer, ... kept) from a path or a binary buffer.

    Args:
        file (str | PathLike | file-like): a ``.pth``/``.pt``/``.safetensors`` path, an
            ``http(s)://`` URL (downloaded once, see :func:`~.remote.fetch_url`), or an open binary
            buffer holding a ``torch.save`` pickle (what mmengine's remote backends give).
        trust (bool): load with ``weights_only=False``: only for a file you trust. Also on when
            the caller runs inside :func:`~mmdet_dinov2.checkpoints.trusted_checkpoints`.
        map_location: as :func:`torch.load` (``.safetensors``: a device).

    Returns:
        object: what was saved, tensors on ``map_location``.

    Raises:
        FileNotFoundError, UnsafeCheckpointError, CheckpointError: as :func:`load_state_dict_file`.
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
            return _load_safetensors(path, map_location)
    return _load_pickle(file, trust or checkpoints_trusted(), map_location, name)


def _check_is_file(path):
    """Raise a precise error when ``path`` is not a regular, readable file."""
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


def _load_safetensors(path, device='cpu'):
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(
            f'cannot read {path} as safetensors (truncated or corrupt?): {err}') from err


def _load_pickle(file, trust, map_location='cpu', name=None):
    """``torch.load`` of a path or buffer, weights-only with :func:`safe_globals` unless trusted."""
    if name is None:
        name = file if isinstance(file, (str, os.PathLike)) else getattr(file, 'name', '<buffer>')
    start = None if isinstance(file, (str, os.PathLike)) else file.tell()
    allowed = safe_globals()
    try:
        with exactly_these_globals(allowed):
            return torch.load(file, map_location=map_location, weights_only=not trust)
    except Exception as err:  # torch raises many types for bad files; each is reported below
        if not trust:
            message = str(err)
            if RefusedLookupError.marker in message:
                detail = message[message.index(RefusedLookupError.marker):].splitlines()[0]
                raise UnsafeCheckpointError(name, ['builtins.getattr'], detail) from None
            if start is not None:
                file.seek(start)
            unsafe = _unsafe_globals(file, err, allowed)
            if unsafe:
                raise UnsafeCheckpointError(name, unsafe) from None
        raise CheckpointError(
            f'cannot read {name} as a PyTorch checkpoint (truncated, corrupt, or not a '
            f'checkpoint): {type(err).__name__}: {_first_line(err)}') from err


def _unsafe_globals(file, err, allowed):
    """The globals that made a weights-only load fail, or [] when it failed for another reason."""
    if 'Weights only load failed' not in str(err):
        return []
    try:  # a zip checkpoint can be scanned statically, without unpickling anything
        with exactly_these_globals(allowed):
            found = torch.serialization.get_unsafe_globals_in_checkpoint(file)
        if found:
            return sorted(found)
    except (ValueError, RuntimeError):  # legacy (non-zip) format or unreadable zip
        pass
    named = set(_GLOBAL_IN_MESSAGE.findall(str(err)))
    named |= {name for match in _REFUSED_IN_MESSAGE.findall(str(err)) for name in match if name}
    return sorted(named)


def _first_line(err):
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0][:300] if lines else repr(err)


def _unwrap(obj, path):
    """Take the state dict out of a training checkpoint and check it maps names to tensors."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f'{path} holds a {type(obj).__name__}, not a state dict (a mapping of parameter '
            'names to tensors)')
    for key in WRAPPER_KEYS:
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


def save_state_dict_file(obj, path):
    """Write ``obj`` to ``path`` atomically (:func:`~mmdet_dinov2.utils.atomic_open`).

    A crash or a full disk leaves either the old file or none, never a truncated one.
    ``.safetensors`` paths are written with safetensors (``obj`` must be a flat tensor dict),
    others with ``torch.save``.

    Args:
        obj (dict): what to save, usually a state dict.
        path (str | Path): the destination; its folder is created when missing.
    """
    with atomic_open(path, 'wb') as f:
        if Path(path).suffix == '.safetensors':
            from safetensors.torch import save
            f.write(save({key: value.contiguous() for key, value in obj.items()}))
        else:
            torch.save(obj, f)
