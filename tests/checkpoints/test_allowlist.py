"""No global a checkpoint may name lets its pickle reach code.

First the known gadget: ``builtins.getattr`` (allowed through mmengine's list) reaches the builtins
module as ``getattr.__self__``, then ``eval``/``exec``, which torch's allowed
``_rebuild_from_type_v2`` calls. Then, systematically: every global of the effective allow-list
(torch's built-in list and ours) is called with code, handed to ``_rebuild_from_type_v2``, and
looked into with getattr, and nothing may run.
"""
import io
import types

import pytest
import torch

from mmdet_dinov2.checkpoints import CheckpointError, UnsafeCheckpointError, load_checkpoint_file
from tests.checkpoints import gadgets as g


@pytest.mark.parametrize('legacy', [False, True], ids=['zip', 'legacy'])
@pytest.mark.parametrize('kind', ['eval returning a tensor', 'eval returning None', 'exec'])
def test_the_getattr_gadget_is_refused_and_runs_nothing(tmp_path, kind, legacy):
    marker = tmp_path / 'RAN'
    payload = (g.exec_gadget(marker) if kind == 'exec'
               else g.eval_gadget(marker, tensor=kind.endswith('tensor')))
    path = g.write(tmp_path / 'gadget.pth', payload, legacy=legacy)
    with pytest.raises(UnsafeCheckpointError) as error:
        load_checkpoint_file(path)
    assert not marker.exists(), 'the payload ran'
    message = str(error.value)
    assert str(path) in message and 'builtins.getattr' in message and "'__self__'" in message


def test_the_gadget_does_run_under_mmengines_own_allow_list(tmp_path):
    """Proof that the test above tests something: mmengine's list admits the gadget."""
    from mmengine.runner.checkpoint import get_torch_safe_globals
    marker = tmp_path / 'RAN'
    path = g.write(tmp_path / 'gadget.pth', g.eval_gadget(marker, tensor=True))
    with torch.serialization.safe_globals(get_torch_safe_globals()):
        loaded = torch.load(path, weights_only=True)
    assert marker.exists() and torch.is_tensor(loaded)


def effective_allow_list():
    """(module, name) -> object of every global a weights-only load of ours admits."""
    from torch._weights_only_unpickler import _get_allowed_globals  # torch's built-in list

    from mmdet_dinov2.checkpoints import safe_globals
    allowed = dict(_get_allowed_globals())
    for entry in safe_globals():
        obj, name = entry if isinstance(entry, tuple) else (
            entry, f'{entry.__module__}.{entry.__qualname__}')
        allowed[name] = obj
    return {tuple(name.rsplit('.', 1)): obj for name, obj in allowed.items()}


ATTRIBUTES = ('__self__', '__globals__', '__builtins__', '__init__', '__class__', '__call__',
              '__subclasses__', '__reduce__', '__module__', '__dict__', 'system', 'eval', 'exec',
              'min', 'mean')
TARGETS = ('eval', 'exec', '__import__', 'os.system', 'subprocess.Popen')


def attacks(global_bytes, marker):
    """Ways a pickle could try to get from one allowed global to running ``code``."""
    code = g.text(g.touch_code(marker, tensor=True))
    shell = g.text(f'touch {marker}')
    found = [g.call(global_bytes, code), g.call(global_bytes, shell),
             g.through_rebuild(global_bytes, code), g.through_rebuild(global_bytes, shell)]
    for target in TARGETS:
        found.append(g.call(global_bytes, g.text(target)))
        found.append(g.call(global_bytes, *map(g.text, target.rsplit('.', 1))))
    getattr_ = g.glob('builtins', 'getattr')
    for attribute in ATTRIBUTES:
        reached = g.call(getattr_, global_bytes, g.text(attribute))
        found.append(reached)
        found.append(g.through_rebuild(reached, code))
        for target in TARGETS[:3]:
            found.append(g.through_rebuild(g.call(getattr_, reached, g.text(target)), code))
    return [g.PROTO + attack + b'.' for attack in found]


def _statistics_methods():
    from mmengine.logging.history_buffer import HistoryBuffer
    return {getattr(HistoryBuffer, name) for name in ('min', 'max', 'current', 'mean')}


def reached_code(obj, depth=0):
    """Whether a loaded object holds a function, method or module (something that runs code),
    other than the HistoryBuffer statistics methods that checkpoints legitimately name."""
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                        types.ModuleType)):
        return obj not in _statistics_methods()
    if depth > 4:
        return False
    if isinstance(obj, dict):
        return any(reached_code(v, depth + 1) for v in (*obj.keys(), *obj.values()))
    if isinstance(obj, (list, tuple, set, frozenset)):
        return any(reached_code(v, depth + 1) for v in obj)
    return False


def test_no_allowed_global_reaches_code(tmp_path):
    allowed = effective_allow_list()
    assert ('builtins', 'getattr') in allowed and len(allowed) > 100
    marker = tmp_path / 'RAN'
    tried = refused = 0
    for (module, name), obj in sorted(allowed.items()):
        for attack in attacks(g.glob(module, name), marker):
            tried += 1
            buffer = g.write(io.BytesIO(), attack, legacy=True)
            try:
                loaded = load_checkpoint_file(buffer)
            except CheckpointError:
                refused += 1
            else:
                assert not reached_code(loaded), (module, name, loaded)
            assert not marker.exists(), f'code ran through {module}.{name}: {attack!r}'
    assert tried > 5000 and refused > tried // 2  # most attempts are refused outright


def test_classes_other_libraries_add_to_torchs_list_are_not_admitted(tmp_path):
    """torch._dynamo / torch.distributed add classes to torch's user list at import time;
    ``traceback.FrameSummary`` reads any source file it is given. None of them loads here."""
    import traceback
    torch.serialization.add_safe_globals([traceback.FrameSummary])
    try:
        pickle_bytes = g.PROTO + g.call(g.glob('traceback', 'FrameSummary'), g.text('/etc/hostname'),
                                        b'K\x01', g.text('x')) + b'.'
        with pytest.raises(UnsafeCheckpointError, match='traceback.FrameSummary'):
            load_checkpoint_file(g.write(tmp_path / 'frame.pth', pickle_bytes))
        assert traceback.FrameSummary in torch.serialization.get_safe_globals()  # restored
    finally:
        torch.serialization.clear_safe_globals()


def test_restricted_getattr_allows_exactly_the_history_buffer_statistics():
    from mmengine.logging.history_buffer import HistoryBuffer

    from mmdet_dinov2.checkpoints.allowlist import RefusedLookupError, restricted_getattr
    for name in ('min', 'max', 'current', 'mean'):
        assert restricted_getattr(HistoryBuffer, name) is getattr(HistoryBuffer, name)
    for obj, name in ((HistoryBuffer, '__init__'), (HistoryBuffer, 'update'),
                      (HistoryBuffer(), 'min'), (getattr, '__self__'), (HistoryBuffer, 'data')):
        with pytest.raises(RefusedLookupError):
            restricted_getattr(obj, name)
    with pytest.raises(RefusedLookupError):
        restricted_getattr(HistoryBuffer, 'min', None)  # probing with a default
