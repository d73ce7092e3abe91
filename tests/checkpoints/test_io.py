"""Safe reading of checkpoint files: what loads, and what is refused with which message."""
import io
import os

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from safetensors.torch import save_file

from mmdet_dinov2.checkpoints import (CheckpointError, UnsafeCheckpointError,
                                      load_checkpoint_file, load_state_dict_file,
                                      save_state_dict_file)


class _CreatesFile:
    """Unpickling this runs ``open(marker, 'w')``: the file appears only if the pickle ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, 'w')


class _FailsToPickle:
    def __reduce__(self):
        raise RuntimeError('cannot be saved')


def _tensors():
    return {'a.weight': torch.randn(3, 4), 'a.bias': torch.arange(3.0)}


def _assert_same(loaded, expected):
    assert loaded.keys() == expected.keys()
    for key in expected:
        assert torch.equal(loaded[key], expected[key]), key


@pytest.mark.parametrize('zipfile', [True, False], ids=['zip', 'legacy'])
def test_unsafe_pickle_is_refused_without_running_it(tmp_path, zipfile):
    marker = tmp_path / 'marker'
    path = tmp_path / 'payload.pth'
    torch.save({'state_dict': _tensors(), 'meta': _CreatesFile(marker)}, path,
               _use_new_zipfile_serialization=zipfile)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_state_dict_file(path)
    assert not marker.exists()
    message = str(info.value)
    assert str(path) in message and 'open' in message
    assert 'trust=True / --trust-checkpoint only for a file you trust' in message
    assert any('open' in name for name in info.value.global_names)


def test_trust_loads_a_pickle_with_code(tmp_path):
    marker = tmp_path / 'marker'
    path = tmp_path / 'payload.pth'
    expected = _tensors()
    torch.save({'state_dict': expected, 'meta': _CreatesFile(marker)}, path)
    _assert_same(load_state_dict_file(path, trust=True), expected)
    assert marker.exists()  # the pickle did run: that is what trust=True allows


def test_mmengine_checkpoint_loads_safely(tmp_path):
    buffer = HistoryBuffer()
    buffer.update(0.5)
    expected = {'backbone.' + k: v for k, v in _tensors().items()}
    checkpoint = {'meta': {'epoch': np.int64(3), 'seed': np.array([1, 2]), 'hub': buffer,
                           'lr': np.float64(1e-4)},
                  'state_dict': expected, 'message_hub': {'loss': buffer}}
    path = tmp_path / 'epoch_3.pth'
    torch.save(checkpoint, path)
    _assert_same(load_state_dict_file(path), expected)


def test_buffer_keeps_the_whole_checkpoint_and_refuses_unsafe(tmp_path):
    buffer = HistoryBuffer()
    buffer.update(2.0)
    data = io.BytesIO()
    torch.save({'meta': {'hub': buffer, 'epoch': np.int64(3)}, 'state_dict': _tensors()}, data)
    data.seek(0)
    loaded = load_checkpoint_file(data)
    assert loaded['meta']['epoch'] == 3 and loaded['meta']['hub'].current() == 2.0
    marker = tmp_path / 'marker'
    data = io.BytesIO()
    torch.save({'state_dict': _tensors(), 'meta': _CreatesFile(marker)}, data)
    data.seek(0)
    with pytest.raises(UnsafeCheckpointError,
                       match=r'<buffer>: its pickle needs (io|builtins)\.open'):
        load_checkpoint_file(data)
    assert not marker.exists()


def test_wrappers_and_dataparallel_prefix_are_removed(tmp_path):
    expected = _tensors()
    path = tmp_path / 'wrapped.pth'
    torch.save({'model': {'module.' + k: v for k, v in expected.items()}, 'epoch': 3}, path)
    _assert_same(load_state_dict_file(path), expected)


def test_safetensors_loads(tmp_path):
    expected = _tensors()
    path = tmp_path / 'weights.safetensors'
    save_file(expected, str(path))
    _assert_same(load_state_dict_file(path), expected)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='checkpoint file not found: .*nothing.pth'):
        load_state_dict_file(tmp_path / 'nothing.pth')


def test_empty_file(tmp_path):
    path = tmp_path / 'empty.pth'
    path.touch()
    with pytest.raises(CheckpointError, match=r'empty \(0 bytes\)'):
        load_state_dict_file(path)


@pytest.mark.parametrize('suffix,zipfile', [('.pth', True), ('.pth', False), ('.safetensors', None)])
def test_truncated_file(tmp_path, suffix, zipfile):
    path = tmp_path / f'full{suffix}'
    if suffix == '.safetensors':
        save_file(_tensors(), str(path))
    else:
        torch.save(_tensors(), path, _use_new_zipfile_serialization=zipfile)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated') as info:
        load_state_dict_file(path)
    assert not isinstance(info.value, UnsafeCheckpointError)
    assert str(path) in str(info.value)


def test_text_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / 'page.pth'
    path.write_text('<html>404 Not Found</html>')
    with pytest.raises(CheckpointError, match='not a checkpoint'):
        load_state_dict_file(path)


@pytest.mark.parametrize('content,match', [
    ([torch.zeros(2)], 'holds a list, not a state dict'),
    ({'weight': torch.zeros(2), 'step': 3}, "'step' \\(int\\)"),
    ({}, 'empty state dict'),
])
def test_content_that_is_no_state_dict(tmp_path, content, match):
    path = tmp_path / 'odd.pth'
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=match):
        load_state_dict_file(path)


@pytest.mark.parametrize('name', ['out.pth', 'out.safetensors'])
def test_save_round_trip_leaves_no_temporary(tmp_path, name):
    expected = _tensors()
    save_state_dict_file(expected, tmp_path / 'sub' / name)
    _assert_same(load_state_dict_file(tmp_path / 'sub' / name), expected)
    assert os.listdir(tmp_path / 'sub') == [name]


def test_failed_save_keeps_the_old_file(tmp_path):
    path = tmp_path / 'out.pth'
    expected = _tensors()
    save_state_dict_file(expected, path)
    with pytest.raises(RuntimeError, match='cannot be saved'):
        save_state_dict_file({'bad': _FailsToPickle()}, path)
    _assert_same(load_state_dict_file(path), expected)
    assert os.listdir(tmp_path) == ['out.pth']


def test_remote_prefixes_are_those_mmengine_reads_off_this_machine():
    """A path with one of these prefixes is no local file: each reaches one of our remote loaders, and
    every plain prefix we register is among them."""
    from mmengine.runner.checkpoint import CheckpointLoader

    from mmdet_dinov2.checkpoints import REMOTE_PREFIXES
    from mmdet_dinov2.checkpoints.mmengine_schemes import SCHEMES, load_from_local, register
    register()
    ours = {loader for _, loader in SCHEMES} - {load_from_local}
    for prefix in REMOTE_PREFIXES:  # private: mmengine's own choice of loader is what is checked
        assert CheckpointLoader._get_checkpoint_loader(prefix + 'host/x.pth') in ours, prefix
    plain = {p for prefixes, _ in SCHEMES[1:] for p in ((prefixes,) if isinstance(prefixes, str) else prefixes)
             if '(' not in p}
    assert plain <= set(REMOTE_PREFIXES)
