"""The exact set of globals a checkpoint pickle may name, and why none of them can run code.

``torch.load(weights_only=True)`` lets a pickle name and call only torch's built-in list and the
user list of :func:`torch.serialization.safe_globals`. A pickle can pass anything it reached as an
argument, and torch's ``_rebuild_from_type_v2(func, type, args, state)`` calls ``func``: loading is
only as safe as the weakest callable on both lists. Audit of what each admitted global reaches:

- torch's built-in list: tensor/storage/dtype constructors; they build data and call nothing given.
- mmengine's ``get_torch_safe_globals``: ``slice``, numpy's array and scalar reconstructors,
  ``numpy.ndarray``/``dtype`` and three dtype classes, ``HistoryBuffer``: data types. **And
  ``builtins.getattr``**, which reaches anything (``getattr(getattr, '__self__')`` is the builtins
  module, ``eval`` one lookup further). mmengine admits it because a message hub pickles
  ``HistoryBuffer.min/max/current/mean`` as ``getattr(HistoryBuffer, 'min')``; here
  ``builtins.getattr`` resolves to :func:`restricted_getattr`, which performs only those lookups.
- ours: the other numeric/bool/str numpy dtype classes (mmdet 2.x metas hold float32 scores) and
  the numpy 1.x names of the array/scalar reconstructors: data types.
- what other libraries add to torch's user list at import (torch.distributed's ``DTensor``,
  torch._dynamo's builtin exceptions, ``traceback.FrameSummary`` that reads source files, ...) is
  **not** admitted: :func:`exactly_these_globals` replaces the user list for one load.

``tests/checkpoints/test_allowlist.py`` tries to reach ``eval``, ``exec``, ``os.system``,
``__import__`` and ``subprocess`` through every admitted global.
"""
import contextlib
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import get_torch_safe_globals


class RefusedLookupError(pickle.UnpicklingError):
    """A checkpoint's pickle asked for an attribute lookup that no checkpoint needs."""

    marker = 'refused attribute lookup:'


_LOOKUPS = {HistoryBuffer: frozenset({'min', 'max', 'current', 'mean'})}


def restricted_getattr(obj, name, *default):
    """What ``builtins.getattr`` means inside a checkpoint: one of :data:`_LOOKUPS`, else
    :class:`RefusedLookupError` (also for a lookup with a default: that probes attributes)."""
    names = next((names for cls, names in _LOOKUPS.items() if obj is cls), ())
    if not default and type(name) is str and name in names:
        return getattr(obj, name)
    shown = ('getattr' if obj is restricted_getattr
             else getattr(obj, '__qualname__', None) or type(obj).__name__)
    raise RefusedLookupError(
        f'{RefusedLookupError.marker} getattr({shown}, {name!r}); checkpoints only need '
        + ', '.join(f'{cls.__name__}.{n}' for cls, names in _LOOKUPS.items() for n in sorted(names)))


_NUMPY_DTYPES = [f'{name}DType' for name in (
    'Bool Int8 Int16 Int32 Int64 UInt8 UInt16 UInt32 UInt64 Float16 Float32 Float64 Long ULong '
    'LongLong ULongLong Byte UByte Short UShort Int UInt Str Bytes').split()]


def safe_globals():
    """The globals a checkpoint may name beyond torch's built-in list (see the audit above).

    Returns:
        list: classes/functions, and ``(object, 'module.name')`` pairs for names that resolve to
        something else (``builtins.getattr`` -> :func:`restricted_getattr`, numpy 1.x names).
    """
    allowed = [g for g in get_torch_safe_globals() if g is not getattr]
    allowed.append((restricted_getattr, 'builtins.getattr'))
    allowed += [getattr(np.dtypes, name) for name in _NUMPY_DTYPES]
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    allowed += [(multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
                (multiarray.scalar, 'numpy.core.multiarray.scalar')]
    return allowed


@contextlib.contextmanager
def exactly_these_globals(allowed):
    """Make torch's user allow-list exactly ``allowed`` inside the block, then restore it
    (:func:`torch.serialization.safe_globals` only adds to what imports put there)."""
    previous = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(list(allowed))
    try:
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(previous)
