"""The exact set of globals a checkpoint pickle may name, and why none of them can run code.

``torch.load(weights_only=True)`` admits torch's built-in list and the user list; a pickle can hand
whatever it reached to ``_rebuild_from_type_v2(func, type, args, state)``, which calls ``func``:
loading is as safe as the weakest admitted callable. What each admitted global reaches:

- torch's built-in list: tensor/storage/dtype constructors: build data, call nothing given.
- mmengine's ``get_torch_safe_globals``: ``slice``, numpy's array/scalar reconstructors,
  ``ndarray``/``dtype``, three dtype classes, ``HistoryBuffer``: data. **And ``builtins.getattr``**,
  which reaches anything (``getattr(getattr, '__self__')`` is the builtins module, ``eval`` one
  lookup on); mmengine admits it for a message hub's ``getattr(HistoryBuffer, 'min')``: here it is
  :func:`restricted_getattr`, which performs only those lookups.
- ours: the other numeric/bool/str numpy dtype classes (mmdet 2.x metas hold float32 scores) and
  numpy 1.x names of the reconstructors: data.
- what other libraries add to the user list at import (``DTensor``, torch._dynamo's exceptions,
  ``traceback.FrameSummary`` that reads files, ...) is **not** admitted:
  :func:`exactly_these_globals` replaces the user list for one load.

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


_LOOKUPS = ('current', 'max', 'mean', 'min')  # of HistoryBuffer


def restricted_getattr(obj, name, *default):
    """``builtins.getattr`` inside a checkpoint: one of :data:`_LOOKUPS`, else
    :class:`RefusedLookupError` (also with a default: that probes attributes)."""
    if obj is HistoryBuffer and not default and type(name) is str and name in _LOOKUPS:
        return getattr(obj, name)
    shown = ('getattr' if obj is restricted_getattr
             else getattr(obj, '__qualname__', None) or type(obj).__name__)
    raise RefusedLookupError(f'{RefusedLookupError.marker} getattr({shown}, {name!r}); checkpoints '
                             'only need ' + ', '.join(f'HistoryBuffer.{n}' for n in _LOOKUPS))


def safe_globals():
    """The globals a checkpoint may name beyond torch's built-in list (see the audit above):
    classes/functions, and ``(object, 'module.name')`` pairs for names that resolve to something
    else (``builtins.getattr`` -> :func:`restricted_getattr`, numpy 1.x names)."""
    allowed = [g for g in get_torch_safe_globals() if g is not getattr]
    allowed.append((restricted_getattr, 'builtins.getattr'))
    allowed += [getattr(np.dtypes, f'{name}DType') for name in (
        'Bool Int8 Int16 Int32 Int64 UInt8 UInt16 UInt32 UInt64 Float16 Float32 Float64 Long ULong '
        'LongLong ULongLong Byte UByte Short UShort Int UInt Str Bytes').split()]
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    return allowed + [(multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
                      (multiarray.scalar, 'numpy.core.multiarray.scalar')]


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
