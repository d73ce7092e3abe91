"""Bad inputs to the demos are refused or skipped with a message naming the file: an image whose
header declares more pixels than --max-pixels (before decoding), a text or empty file, a folder
with one image cut short (the others done, a summary and exit status 1), an --out-dir that is a
file, a damaged input video (blamed as the input, not the output)."""
from logging.handlers import BufferingHandler
from pathlib import Path

import numpy as np
import pytest
from mmengine.logging import MMLogger
from PIL import Image

from tests.helpers import REPO, TINY_CONFIG, load_tool


def image_demo(*args):
    return load_tool('demo/image_demo.py').main([str(a) for a in args])


@pytest.fixture
def log():
    """The records of mmengine's current logger during the test."""
    handler = BufferingHandler(10_000)
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield handler.buffer
    logger.removeHandler(handler)


def write_png(path, size=(96, 96), seed=0):
    array = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    # small files that declare 12000x12000 pixels (0.4 GiB once decoded) and 20000x20000 (over
    # PIL's own limit)
    big = tmp_path / 'big.png'
    Image.new('1', (12000, 12000)).save(big)
    assert big.stat().st_size < 100_000
    write_png(tmp_path / 'small.png')
    with pytest.raises(SystemExit, match=rf'{big}: 12000x12000 = 144,000,000 pixels, over the '
                                         r'limit of 100,000,000.*--max-pixels'):
        image_demo(tmp_path, TINY_CONFIG, '--device', 'cpu', '--out-dir', tmp_path / 'out')
    Image.new('1', (20000, 20000)).save(big)
    with pytest.raises(SystemExit, match=rf'{big}: .*400000000 pixels'):
        image_demo(big, TINY_CONFIG, '--device', 'cpu', '--out-dir', tmp_path / 'out')
    with pytest.raises(SystemExit, match='over the limit of 9,215'):  # 96 x 96 = 9,216
        image_demo(tmp_path / 'small.png', TINY_CONFIG, '--max-pixels', 9215)
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('content', [b'', b'just some notes\n'], ids=['empty', 'text'])
def test_a_file_that_is_no_image_is_named(tmp_path, content):
    path = tmp_path / 'photo.jpg'
    path.write_bytes(content)
    with pytest.raises(SystemExit, match=rf'no image could be read: {path}'):
        image_demo(path, TINY_CONFIG, '--device', 'cpu')


def test_an_out_dir_that_is_a_file_is_refused_before_any_work(tmp_path):
    image = write_png(tmp_path / 'a.png')
    (tmp_path / 'taken').write_text('')
    for out_dir in (tmp_path / 'taken', tmp_path / 'taken' / 'sub'):
        with pytest.raises(SystemExit, match=rf'--out-dir {out_dir}: {tmp_path / "taken"} is a '
                                             'file, not a folder'):
            image_demo(image, TINY_CONFIG, '--out-dir', out_dir)
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'preds').write_text('')
    with pytest.raises(SystemExit, match=r'out/preds is a file'):
        image_demo(image, TINY_CONFIG, '--out-dir', tmp_path / 'out')


@pytest.mark.slow
@pytest.mark.usefixtures('one_thread')
def test_a_folder_with_a_truncated_image_does_the_others_and_exits_with_a_summary(tmp_path, log):
    folder = tmp_path / 'images'
    folder.mkdir()
    for i in range(3):
        write_png(folder / f'{i}.png', seed=i)
    data = (folder / '1.png').read_bytes()
    (folder / '1.png').write_bytes(data[:len(data) // 2])
    (folder / '3.png').write_bytes(b'')
    out = tmp_path / 'out'
    with pytest.raises(SystemExit, match=rf'2 of 4 image\(s\) could not be read and were skipped: '
                                         rf'{folder / "3.png"}, {folder / "1.png"}'):
        image_demo(folder, TINY_CONFIG, '--device', 'cpu', '--out-dir', out, '--batch-size', 2)
    assert sorted(p.name for p in (out / 'preds').iterdir()) == ['0.json', '2.json']
    assert sorted(p.name for p in (out / 'vis').iterdir()) == ['0.png', '2.png']
    text = '\n'.join(record.getMessage() for record in log)
    assert f'skipped: {folder / "1.png"}: the image cannot be decoded' in text
    assert f'skipped: {folder / "3.png"}: not a readable image' in text
    assert '2 image(s) done' in text


def test_a_damaged_video_is_blamed_as_the_input(tmp_path, monkeypatch):
    video = tmp_path / 'clip.mp4'
    video.write_bytes(b'\x00\x00\x00\x18ftypmp42' + bytes(5000))
    monkeypatch.syspath_prepend(str(REPO / 'demo'))  # video_demo imports image_demo
    video_demo = load_tool('demo/video_demo.py').main
    with pytest.raises(SystemExit, match=rf'cannot read the input video {video}: .*damaged'):
        video_demo([str(video), TINY_CONFIG, str(tmp_path / 'none.pth'),
                    '--out', str(tmp_path / 'out.mp4')])
    assert not Path(tmp_path / 'out.mp4').exists()


@pytest.mark.slow
@pytest.mark.usefixtures('one_thread')
def test_a_video_cut_short_gives_the_frames_it_has_and_a_warning(tmp_path, monkeypatch, log):
    import cv2
    import torch
    from mmengine.config import Config

    from mmdet.registry import MODELS
    video = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 5, (64, 64))
    for seed in range(6):
        writer.write(np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    writer.release()
    data = video.read_bytes()
    video.write_bytes(data[:int(len(data) * 0.6)])  # the header still says 6 frames
    model = MODELS.build(Config.fromfile(TINY_CONFIG).model)
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'model.pth')
    monkeypatch.syspath_prepend(str(REPO / 'demo'))
    video_demo = load_tool('demo/video_demo.py').main
    video_demo([str(video), TINY_CONFIG, str(tmp_path / 'model.pth'), '--device', 'cpu',
                '--out', str(tmp_path / 'out.mp4')])
    drawn = cv2.VideoCapture(str(tmp_path / 'out.mp4'))
    frames = drawn.get(cv2.CAP_PROP_FRAME_COUNT)
    drawn.release()
    assert 0 < frames < 6
    assert (f'{video}: {int(frames)} of the 6 frames its header declares could be decoded'
            in '\n'.join(record.getMessage() for record in log))
