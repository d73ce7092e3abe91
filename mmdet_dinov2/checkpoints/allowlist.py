"""The exact set of globals a checkpoint pickle may name, and why none of them can run code.

``torch.load(weights_only=True)`` unpickles with a restricted unpickler: a pickle may only name
(``GLOBAL``) and call (``REDUCE``/``NEWOBJ``) what is on torch's built-in list (tensor rebuild
functions, storages, dtypes, ``OrderedDict``, ``set``, ...) or on the user list that
:func:`torch.serialization.safe_globals` sets. Loading is only as safe as the weakest callable on
those two lists, since a pickle can pass any object it reached as an argument:
``torch._tensor._rebuild_from_type_v2(func, type, args, state)`` (on torch's list) calls ``func``.

Audit (what a pickle could reach through each global we admit):

- torch's built-in list: tensor/storage/dtype constructors; they build data, call nothing given.
  ``_rebuild_from_type_v2`` calls what it is given, so it is safe exactly when nothing callable
  beyond the lists can be reached.
- mmengine's :func:`~mmengine.runner.checkpoint.get_torch_safe_globals`: ``slice``, numpy's array
  and scalar reconstructors, ``numpy.ndarray``/``numpy.dtype`` and three dtype classes,
  ``HistoryBuffer``: data types. **And ``builtins.getattr``**, which reaches anything:
  ``getattr(getattr, '__self__')`` is the ``builtins`` module, from which ``eval`` is one more
  lookup, and ``_rebuild_from_type_v2`` then calls it. It is on mmengine's list because a
  checkpoint's message hub pickles ``HistoryBuffer.min`` / ``max`` / ``current`` / ``mean`` (the
  statistics methods of its logged scalars) as ``getattr(HistoryBuffer, 'min')``. Here
  ``builtins.getattr`` resolves to :func:`restricted_getattr` instead, which performs exactly those
  lookups and refuses every other one.
- ours: the other numeric/bool/str numpy dtype classes (mmdet 2.x metas hold float32 scores) and
  the numpy 1.x names of the array/scalar reconstructors (``numpy.core.multiarray.*``): data types.
- Globals other libraries add to torch's user list at import time (torch.distributed adds
  ``DTensor``, torch._dynamo adds every builtin exception class, ``traceback.FrameSummary`` whose
  constructor reads source files, ...) are **not** admitted: :func:`exactly_these_globals` replaces
  the user list with :func:`safe_globals` for the duration of one load.

``tests/reliability/test_allowlist.py`` tries, for every admitted global, to reach ``eval``,
``exec``, ``os.system``, ``__import__`` and ``subprocess`` through it.
"""
import contextlib
import pickle

import torch

__all__ = ['RefusedLookupError', 'exactly_these_globals', 'restricted_getattr', 'safe_globals']


class RefusedLookupError(pickle.UnpicklingError):
    """A checkpoint's pickle asked for an attribute lookup that no checkpoint of ours or mmengine needs."""

    marker = 'refused attribute lookup:'


def _attribute_lookups():
    """{class: attribute names} that :func:`restricted_getattr` performs (mmengine's needs)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    return {HistoryBuffer: frozenset({'min', 'max', 'current', 'mean'})}


def restricted_getattr(obj, name, *default):
    """What ``builtins.getattr`` means inside a checkpoint: one of a few known lookups, or refused.

    Args:
        obj: the object the pickle looks into (must be one of the allowed classes itself).
        name (str): the attribute (must be one of that class's allowed names).
        *default: refused (a lookup with a default probes for attributes).

    Raises:
        RefusedLookupError: any other lookup.
    """
    for cls, names in _attribute_lookups().items():
        if obj is cls and not default and type(name) is str and name in names:
            return getattr(cls, name)
    shown = ('getattr' if obj is restricted_getattr
             else getattr(obj, '__qualname__', None) or type(obj).__name__)
    raise RefusedLookupError(
        f'{RefusedLookupError.marker} getattr({shown}, {name!r}); checkpoints only need '
        + ', '.join(f'{cls.__name__}.{n}' for cls, names in _attribute_lookups().items()
                    for n in sorted(names)))


_NUMPY_DTYPES = ('BoolDType', 'Int8DType', 'Int16DType', 'Int32DType', 'Int64DType', 'UInt8DType',
                 'UInt16DType', 'UInt32DType', 'UInt64DType', 'Float16DType', 'Float32DType',
                 'Float64DType', 'LongDType', 'ULongDType', 'LongLongDType', 'ULongLongDType',
                 'ByteDType', 'UByteDType', 'ShortDType', 'UShortDType', 'IntDType', 'UIntDType',
                 'StrDType', 'BytesDType')


def safe_globals():
    """The globals a checkpoint may name beyond torch's built-in list (see the module's audit).

    Returns:
        list: classes/functions, and ``(object, 'module.name')`` pairs for names that resolve to
        something else (``builtins.getattr`` -> :func:`restricted_getattr`, numpy 1.x names).
    """
    import numpy as np
    from mmengine.runner.checkpoint import get_torch_safe_globals
    allowed = [g for g in get_torch_safe_globals() if g is not getattr]
    allowed.append((restricted_getattr, 'builtins.getattr'))
    allowed += [getattr(np.dtypes, name) for name in _NUMPY_DTYPES]
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    allowed += [(multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
                (multiarray.scalar, 'numpy.core.multiarray.scalar')]
    return allowed


@contextlib.contextmanager
def exactly_these_globals(allowed):
    """Make torch's user allow-list exactly ``allowed`` inside the block, then restore it.

    :func:`torch.serialization.safe_globals` only adds to what is there, and importing torch
    submodules (distributed, dynamo) adds classes nobody audited for this project.
    """
    previous = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(list(allowed))
    try:
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(previous)
