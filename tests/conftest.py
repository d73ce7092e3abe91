"""Fixtures shared by the CPU and the CUDA tests."""
import pytest
import torch


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
