"""atomic_open: the destination holds the old or the complete new content, never a mix."""
import os
import stat

import pytest

from mmdet_dinov2.utils import atomic_open


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / 'last_checkpoint'
    path.write_text('epoch_1.pth')
    with pytest.raises(OSError):
        with atomic_open(path, 'w') as f:
            f.write('epoch_')
            raise OSError(28, 'No space left on device')
    assert path.read_text() == 'epoch_1.pth'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['last_checkpoint']


def test_a_complete_write_replaces_the_file_with_the_usual_permissions(tmp_path):
    path = tmp_path / 'sub' / 'epoch_2.pth'
    with atomic_open(path, 'wb') as f:
        f.write(b'\x00' * 1000)
    assert path.read_bytes() == b'\x00' * 1000
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w'"):
        with atomic_open(path, 'a'):
            pass
