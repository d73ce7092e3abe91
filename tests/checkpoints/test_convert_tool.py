"""tools/convert_14to16.py end to end, on files written by the test."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmdet_dinov2.checkpoints import convert_dinov2, load_state_dict_file
from tests import fake_checkpoints as fake
from tests.helpers import load_tool

ROOT = Path(__file__).parents[2]
TOOL = ROOT / 'tools' / 'convert_14to16.py'


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools/convert_14to16.py')


def _assert_same(loaded, expected):
    assert loaded.keys() == expected.keys()
    for key in expected:
        assert torch.equal(loaded[key], expected[key]), key


def test_cli_default_output_name(tmp_path, vits_state_dict):
    src = tmp_path / 'dinov2_vits14_pretrain.pth'
    torch.save(vits_state_dict, src)
    done = subprocess.run([sys.executable, str(TOOL), str(src)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    out = tmp_path / 'dinov2_vits14_pretrain_14to16.pth'
    _assert_same(load_state_dict_file(out), convert_dinov2(vits_state_dict)[0])
    assert f'-> {out}' in done.stdout and '14x14 -> 16x16 (bilinear)' in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name, out.name]


def test_out_and_pinv_for_reg4(tmp_path, tool, capsys):
    sd = fake.dinov2(384, depth=1, registers=4)
    src = tmp_path / 'dinov2_vits14_reg4_pretrain.pth'
    torch.save(sd, src)
    out = tmp_path / 'converted' / 'vits_pinv.pth'
    assert tool.main([str(src), '--out', str(out), '--method', 'pinv']) == out
    _assert_same(load_state_dict_file(out), convert_dinov2(sd, method='pinv')[0])
    printed = capsys.readouterr().out
    assert '(pinv)' in printed and 'register_tokens' in printed


def test_refuses_to_overwrite_input(tmp_path, tool, vits_state_dict):
    src = tmp_path / 'dinov2_vits14_pretrain.pth'
    torch.save(vits_state_dict, src)
    before = src.read_bytes()
    with pytest.raises(SystemExit, match='is the input file; refusing to overwrite'):
        tool.main([str(src), '--out', str(tmp_path / '.' / src.name)])
    assert src.read_bytes() == before


def test_refuses_converted_missing_and_foreign(tmp_path, tool, vits_state_dict):
    converted = tmp_path / 'x_14to16.pth'
    torch.save(convert_dinov2(vits_state_dict)[0], converted)
    with pytest.raises(SystemExit, match='is already converted; nothing to convert'):
        tool.main([str(converted)])
    with pytest.raises(SystemExit, match='checkpoint file not found'):
        tool.main([str(tmp_path / 'absent.pth')])
    resnet = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(1), 'fc.weight': torch.zeros(1)}, resnet)
    with pytest.raises(SystemExit, match='not a DINOv2/ViT-Adapter checkpoint'):
        tool.main([str(resnet)])
    assert not (tmp_path / 'absent_14to16.pth').exists()
    assert not (tmp_path / 'resnet_14to16.pth').exists()


def test_out_a_folder_takes_the_default_name_inside_it(tmp_path, tool, vits_state_dict):
    src = tmp_path / 'dinov2_vits14_pretrain.pth'
    torch.save(vits_state_dict, src)
    (tmp_path / 'converted').mkdir()
    out = tool.main([str(src), '--out', str(tmp_path / 'converted')])
    assert out == tmp_path / 'converted' / 'dinov2_vits14_pretrain_14to16.pth'
    _assert_same(load_state_dict_file(out), convert_dinov2(vits_state_dict)[0])
