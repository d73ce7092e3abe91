"""Tensors of the wrong kind: integer or boolean values under float parameter names (a quantised
file, a safetensors header relabelled from F32 to I32, a bool ``.pth``) are refused by the backbone
loader and the detector loader, naming the tensor and both dtypes; float16 and bfloat16 files load."""
import json
import logging
import struct

import pytest
import torch
from safetensors.torch import save_file

from mmdet_dinov2.checkpoints import (CheckpointError, CheckpointMismatchError, compare_state_dict,
                                      load_backbone_weights)
from mmdet_dinov2.engine.runner import load_detector_weights
from tests import fake_checkpoints as fake
from tests.checkpoints.stand_in import StandInViTAdapter

LOGGER = logging.getLogger('test_tensor_dtypes')


def relabel(path, name, dtype):
    """Rewrite the safetensors header of ``path`` so that tensor ``name`` reads as ``dtype``
    (e.g. 'I32'); its bytes stay as they are."""
    data = path.read_bytes()
    size = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + size])
    header[name]['dtype'] = dtype
    text = json.dumps(header, separators=(',', ':')).encode()
    assert len(text) <= size
    path.write_bytes(data[:8] + text.ljust(size) + data[8 + size:])


def test_compare_names_integer_and_bool_tensors_and_both_dtypes():
    model = {'w': torch.zeros(2, 3), 'b': torch.zeros(3), 'steps': torch.zeros((), dtype=torch.long)}
    bad = {'w': torch.ones(2, 3, dtype=torch.int8), 'b': torch.ones(3, dtype=torch.bool),
           'steps': torch.tensor(7)}
    report = compare_state_dict(model, bad)
    assert report.wrong_dtype == {'w': (torch.int8, torch.float32),
                                  'b': (torch.bool, torch.float32)}
    assert report.loaded == ['steps'] and not report.complete
    assert ('2 tensors hold integers or booleans where the model has floats: w (int8, model '
            'float32), b (bool, model float32)') in report.problems()
    for low in (torch.float16, torch.bfloat16):
        report = compare_state_dict(model, {'w': bad['w'].to(low), 'b': bad['b'].to(low),
                                            'steps': bad['steps']})
        assert report.complete and report.wrong_dtype == {}


def test_the_detector_loader_refuses_them_even_with_partial_load():
    model = torch.nn.Linear(3, 2)
    state = {'weight': torch.ones(2, 3, dtype=torch.int32), 'bias': torch.zeros(2)}
    for partial in (False, True):
        with pytest.raises(CheckpointMismatchError,
                           match=r'det.pth does not fit the model.*\n.*weight \(int32, model float32\)'):
            load_detector_weights(model, state, source='det.pth', partial=partial)
    assert not torch.equal(model.weight, torch.ones(2, 3))
    half = {'weight': torch.full((2, 3), 0.5, dtype=torch.float16), 'bias': torch.zeros(2)}
    load_detector_weights(model, half, source='det.pth')
    assert model.weight.dtype == torch.float32 and torch.equal(model.weight, torch.full((2, 3), 0.5))


def test_a_relabelled_safetensors_header_is_refused_by_the_backbone_loader(tmp_path):
    path = tmp_path / 'dinov2_vits14.safetensors'
    save_file({k: v.contiguous() for k, v in fake.dinov2(384, depth=2).items()}, str(path))
    relabel(path, 'blocks.1.mlp.fc1.weight', 'I32')
    model = StandInViTAdapter(384, depth=2)
    before = model.state_dict()['blocks.1.mlp.fc1.weight'].clone()
    with pytest.raises(CheckpointError, match=rf'{path}: 1 tensors hold integers or booleans .*'
                                              r'blocks.1.mlp.fc1.weight \(int32, model float32\)'):
        load_backbone_weights(model, path, logger=LOGGER)
    assert torch.equal(model.state_dict()['blocks.1.mlp.fc1.weight'], before)


def test_an_int8_file_is_refused_and_half_precision_files_load(tmp_path):
    raw = fake.dinov2(384, depth=2)
    torch.save({k: v.to(torch.int8) if k.startswith('blocks.') else v for k, v in raw.items()},
               tmp_path / 'int8.pth')
    with pytest.raises(CheckpointError, match=r'int8, model float32'):
        load_backbone_weights(StandInViTAdapter(384, depth=2), tmp_path / 'int8.pth', logger=LOGGER)
    for dtype in (torch.float16, torch.bfloat16):
        torch.save({k: v.to(dtype) for k, v in raw.items()}, tmp_path / 'low.pth')
        model = StandInViTAdapter(384, depth=2)
        load_backbone_weights(model, tmp_path / 'low.pth', logger=LOGGER)
        weight = model.state_dict()['blocks.1.mlp.fc1.weight']
        assert weight.dtype == torch.float32
        assert torch.equal(weight, raw['blocks.1.mlp.fc1.weight'].to(dtype).float())
