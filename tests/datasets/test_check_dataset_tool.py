"""tools/misc/check_dataset.py: what training does not read (JSON files and images cut short,
damage inside images) is found before training, naming the file, the image id and what to do.
The checks training shares with the tool: test_checked_coco.py."""
import json
import re

import pytest
from PIL import Image

from mmdet_dinov2.datasets import DatasetCheckError
from tests.datasets.helpers import build, check_tool, two_images, write
from tests.helpers import REPO, load_tool, run_python, tiny_config

pytestmark = pytest.mark.usefixtures('plain_config_text')

NAN, INF = float('nan'), float('inf')


def tool_refuses(root, capsys, *expected, options=()):
    """Assert that the check tool refuses the train split with every string of ``expected`` in
    what it prints."""
    status, listed = check_tool(root, capsys, *options)
    assert status == 1 and 'train: REFUSED' in listed, listed
    for text in expected:
        assert text in listed, listed


# ------------------------------------------------------------------ the json itself
def test_truncated_json_names_the_file_line_and_column(tmp_path, capsys):
    path = write(tmp_path, two_images())
    text = path.read_text()
    path.write_text(text[:len(text) // 2])
    tool_refuses(tmp_path, capsys, f'{path}: truncated: the file ends ({len(text) // 2} bytes) '
                 'in the middle of its JSON, at line 1, column ', 'fetch or write it again')
    path.write_text('')
    tool_refuses(tmp_path, capsys, f'{path}: truncated: the file is empty, at line 1, column 1')


def test_json_cut_anywhere_is_called_truncated(tmp_path):
    check_json = load_tool('tools/misc/check_dataset.py').check_json
    text = json.dumps({'images': [{'id': 1, 'x': -1.5e3, 'ok': True, 'no': None, 'a': NAN,
                                   'b': -INF, 's': 'a"b'}], 'annotations': []}, indent=1)
    path = tmp_path / 'cut.json'
    for end in range(len(text)):
        path.write_text(text[:end])
        with pytest.raises(DatasetCheckError, match=re.escape(f'{path}: truncated: the file ')):
            check_json(path)


def test_malformed_json_names_the_file_line_column_and_text(tmp_path, capsys):
    path = write(tmp_path, two_images())
    dataset = json.loads(path.read_text())
    path.write_text(json.dumps(dataset, indent=1).replace('"width": 64', '"width": 64,,', 1))
    tool_refuses(tmp_path, capsys, f'{path}: malformed JSON at line ', 'Expecting property name',
                 "near '")


# ------------------------------------------------------------------ images cut short or damaged
def image_file(tmp_path, name):
    return tmp_path / 'train' / name


@pytest.mark.parametrize('name', ['a.png', 'a.jpg'])
def test_truncated_images_are_refused_before_training(tmp_path, capsys, name):
    entries = two_images()
    entries[0]['name'] = name
    write(tmp_path, entries)
    path = image_file(tmp_path, name)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 2 // 3])
    with Image.open(path) as image:  # the header alone still reads: training's check passes
        assert image.size == (64, 64)
    assert len(build(tmp_path)) == 2
    kind = 'PNG' if name.endswith('png') else 'JPEG'
    tool_refuses(tmp_path, capsys, f'image 1: truncated image: {path} ({len(data) * 2 // 3} '
                 f'bytes) has no {kind} end marker in its last 4096 bytes, and decoding it fails: ',
                 'copy it again, or remove the image')


def test_images_with_bytes_after_their_end_are_accepted(tmp_path, capsys):
    """Padding after the end marker: found in the last 4 KiB, or decoded when it is longer."""
    entries = two_images()
    entries[1]['name'] = 'b.jpg'
    write(tmp_path, entries)
    for name, padding in [('a.png', 100), ('b.jpg', 10000)]:
        path = image_file(tmp_path, name)
        path.write_bytes(path.read_bytes() + b'\0' * padding)
    status, listed = check_tool(tmp_path, capsys)
    assert status == 0 and '2 images usable, 0 annotation(s) fixed or dropped' in listed, listed


def test_damage_inside_an_image_is_found_by_a_full_decode(tmp_path, capsys):
    """Same length, end marker intact: the header and end check cannot see it; --decode does."""
    write(tmp_path, two_images())
    path = image_file(tmp_path, 'a.png')
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(range(64))
    path.write_bytes(bytes(data))
    assert check_tool(tmp_path, capsys)[0] == 0
    tool_refuses(tmp_path, capsys, f'image 1: unreadable image: {path}: ',
                 options=['--decode'])


# ------------------------------------------------------------------ the command
def test_command_line_help_and_exit_status(tmp_path, capsys):
    """As a user runs it: --help says what it checks; problems give exit status 1 and a report
    naming the file and the entry."""
    tool = REPO / 'tools' / 'misc' / 'check_dataset.py'
    with pytest.raises(SystemExit) as done:
        load_tool('tools/misc/check_dataset.py').parse_args(['--help'])
    shown = capsys.readouterr().out
    assert done.value.code == 0 and '--decode' in shown
    assert 'exit status 1 when a split has problems' in ' '.join(shown.split())
    path = write(tmp_path, two_images())
    path.write_text(path.read_text()[:-10])
    tiny_config(tmp_path, tmp_path / 'work').dump(str(tmp_path / 'cfg.py'))
    result = run_python([tool, tmp_path / 'cfg.py', '--splits', 'train'])
    assert result.returncode == 1, result.stdout + result.stderr
    assert f'train: REFUSED\n{path}: truncated: the file ends' in result.stdout, result.stdout
