"""Every mmengine checkpoint prefix reads through the safe reader: model-zoo names resolve through
mmengine's tables, remote bytes go through io.load_checkpoint_file, unsafe pickles are refused."""
import argparse
from pathlib import Path

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader

import mmdet_dinov2  # noqa: F401  (registers the loaders)
from mmdet_dinov2.checkpoints import DownloadError, UnsafeCheckpointError, mmengine_schemes


def _save(obj, path):
    torch.save(obj, path)
    return str(path)


@pytest.fixture
def files(tmp_path):
    weights = {'backbone.w': torch.ones(2), 'head.b': torch.zeros(1)}
    return dict(weights=weights, safe=_save({'state_dict': weights}, tmp_path / 'safe.pth'),
                unsafe=_save({'meta': argparse.Namespace(x=1)}, tmp_path / 'unsafe.pth'))


def test_torchvision_names_resolve_through_mmengine_and_read_safely(monkeypatch, files):
    monkeypatch.setattr(mmengine_schemes, 'get_torchvision_models',
                        lambda: {'net': files['safe'], 'evil': files['unsafe']})
    loaded = CheckpointLoader.load_checkpoint('torchvision://net')
    assert torch.equal(loaded['state_dict']['backbone.w'], files['weights']['backbone.w'])
    with pytest.raises(UnsafeCheckpointError, match='argparse.Namespace'):
        CheckpointLoader.load_checkpoint('modelzoo://evil')
    with pytest.raises(KeyError, match="torchvision://nothing: no model named 'nothing'"):
        CheckpointLoader.load_checkpoint('torchvision://nothing')


def test_mmcls_names_keep_the_backbone_without_its_prefix(monkeypatch, files):
    monkeypatch.setattr(mmengine_schemes, 'get_mmcls_models', lambda: {'cls': files['safe']})
    loaded = CheckpointLoader.load_checkpoint('mmcls://cls')
    assert list(loaded['state_dict']) == ['w']


def test_openmmlab_names_renamed_and_found_under_mmengine_home(monkeypatch, tmp_path, files):
    (tmp_path / 'home' / 'zoo').mkdir(parents=True)
    _save({'state_dict': files['weights']}, tmp_path / 'home' / 'zoo' / 'new.pth')
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'home'))
    monkeypatch.setattr(mmengine_schemes, 'get_external_models',
                        lambda: {'new': 'zoo/new.pth', 'remote': 'http://127.0.0.1:1/r.pth'})
    monkeypatch.setattr(mmengine_schemes, 'get_deprecated_model_names', lambda: {'old': 'new'})
    loaded = CheckpointLoader.load_checkpoint('open-mmlab://old')
    assert set(loaded['state_dict']) == set(files['weights'])
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    with pytest.raises(DownloadError, match='http://127.0.0.1:1/r.pth'):  # our downloader's error
        CheckpointLoader.load_checkpoint('openmmlab://remote')


def test_object_storage_bytes_read_safely(monkeypatch, files):
    class Backend:
        def get(self, name):
            return Path(files['unsafe' if 'evil' in name else 'safe']).read_bytes()

    monkeypatch.setattr(mmengine_schemes, 'get_file_backend', lambda *a, **k: Backend())
    loaded = CheckpointLoader.load_checkpoint('s3://bucket/good.pth')
    assert set(loaded['state_dict']) == set(files['weights'])
    with pytest.raises(UnsafeCheckpointError, match='petrel://bucket/evil.pth'):
        CheckpointLoader.load_checkpoint('petrel://bucket/evil.pth')


def test_pavi_is_refused_with_what_to_do():
    with pytest.raises(NotImplementedError, match='download the file and give its local path'):
        CheckpointLoader.load_checkpoint('pavi://x')
