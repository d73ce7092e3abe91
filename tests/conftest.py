"""Fixtures shared by the tests of every folder: autograd memory, a tiny dataset, the settings of
tests that build runners, and checks every test gets."""
import os
import shutil
import sys
import tempfile


def _keep_bytecode():
    """Speed: where PYTHONDONTWRITEBYTECODE is set and the venv holds no compiled bytecode, every
    Python process compiles torch, mmcv and mmdet from source again, most of the start-up of each
    tool the tests run. The session keeps the bytecode of what its processes import in a temporary
    folder (PYTHONPYCACHEPREFIX) that this process and every subprocess read and write; removed
    at the end of the session. Returns the folder and the variable's value, or None where
    nothing was changed."""
    if not os.environ.get('PYTHONDONTWRITEBYTECODE') or os.environ.get('PYTHONPYCACHEPREFIX'):
        return None
    folder = tempfile.mkdtemp(prefix='mmdet-dinov2-tests-bytecode.')
    os.environ['PYTHONPYCACHEPREFIX'] = folder
    sys.pycache_prefix, sys.dont_write_bytecode = folder, False
    return folder, os.environ.pop('PYTHONDONTWRITEBYTECODE')


_BYTECODE = _keep_bytecode()  # before the imports below: torch's own modules are kept too

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.coco_data import simple_entries, write_split  # noqa: E402


def pytest_unconfigure(config):
    if _BYTECODE is not None:
        folder, value = _BYTECODE
        os.environ.pop('PYTHONPYCACHEPREFIX', None)
        os.environ['PYTHONDONTWRITEBYTECODE'] = value
        sys.pycache_prefix, sys.dont_write_bytecode = None, True
        shutil.rmtree(folder, ignore_errors=True)


def _saved_bytes(fn) -> int:
    """Bytes of the distinct storages autograd keeps for the backward pass of fn()."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


@pytest.fixture
def saved_bytes():
    """saved_bytes(fn): bytes of the distinct storages autograd keeps for the backward pass of fn()."""
    return _saved_bytes


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """Four training and two validation images of 64x64 pixels, for the tiny config."""
    root = tmp_path_factory.mktemp('tiny_data')
    write_split(root, 'train', simple_entries(4, seed=0))
    write_split(root, 'val', simple_entries(2, seed=1, prefix='val'))
    return root


@pytest.fixture(scope='module')
def plain_config_text():
    """Speed: mmengine formats config text with yapf (seconds per runner: log, dump, every
    checkpoint's meta); a module that builds runners keeps the unformatted text, the same Python."""
    from yapf.yapflib import yapf_api
    formatter = yapf_api.FormatCode
    yapf_api.FormatCode = lambda text, **kwargs: (text, False)
    yield
    yapf_api.FormatCode = formatter


@pytest.fixture(scope='module')
def one_thread():
    """Speed: the tiny models gain nothing from intra-op threads, and on a shared 2-core machine
    two threads per process oversubscribe it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope='session')
def _private_torch_home(tmp_path_factory):
    """Downloads of URL tests go to a temporary torch hub cache, not the user's."""
    previous = os.environ.get('TORCH_HOME')
    os.environ['TORCH_HOME'] = str(tmp_path_factory.mktemp('torch_home'))
    yield
    if previous is None:
        os.environ.pop('TORCH_HOME')
    else:
        os.environ['TORCH_HOME'] = previous


@pytest.fixture(autouse=True)
def _no_trust_left_behind():
    """Trust is scoped to the run or block that asked for it: none is left after a test."""
    from mmdet_dinov2.checkpoints import checkpoints_trusted
    assert not checkpoints_trusted()
    yield
    assert not checkpoints_trusted(), 'checkpoint trust outlived the test that turned it on'
