"""Checkpoints that would give silent wrong results, trust that outlives its run, URLs, resume and
concurrent runs: each is refused with an error naming the file and the tensors, or handled as
documented."""
import hashlib
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest
import torch

from mmdet_dinov2.checkpoints import (
    CheckpointError,
    CheckpointMismatchError,
    DownloadError,
    UnsafeCheckpointError,
    load_checkpoint_file,
)
from tests import fake_checkpoints as fake
from tests.checkpoints.gadgets import Payload
from tests.helpers import REPO, build_runner, load_tool, serve_folder, tiny_config

pytestmark = pytest.mark.usefixtures('plain_config_text', 'one_thread')


def run_test_tool(tiny_data, tmp_path, checkpoint, *args, **options):
    """tools/test.py on the tiny config with ``options``; returns its metrics."""
    tiny_config(tiny_data, tmp_path / 'work', **options).dump(str(tmp_path / 'cfg.py'))
    return load_tool('tools/test.py').main([str(tmp_path / 'cfg.py'), str(checkpoint), *args])


def edited(trained, tmp_path, edit, name='edited.pth'):
    """``trained`` with its state dict changed by ``edit(state_dict)``."""
    checkpoint = load_checkpoint_file(trained)
    edit(checkpoint['state_dict'])
    torch.save(checkpoint, tmp_path / name)
    return tmp_path / name


# ------------------------------------------------------------------ silent wrong results
def test_a_checkpoint_of_another_model_size_is_refused_by_the_test_tool(tiny_data, tmp_path):
    wide = tiny_config(tiny_data, tmp_path / 'wide', **{
        'model.backbone.embed_dim': 96, 'model.backbone.num_heads': 2,
        'model.neck.in_channels': [96] * 4})
    from mmdet.registry import MODELS
    torch.save(dict(state_dict=MODELS.build(wide.model).state_dict()), tmp_path / 'wide.pth')
    with pytest.raises(CheckpointMismatchError) as error:
        run_test_tool(tiny_data, tmp_path, tmp_path / 'wide.pth')
    message = str(error.value)
    assert str(tmp_path / 'wide.pth') in message and 'another shape' in message
    assert 'backbone.patch_embed.proj.weight (96, 3, 16, 16) vs model (64, 3, 16, 16)' in message
    assert 'partial_load = True' in message


def test_a_checkpoint_missing_the_box_head_is_refused(tiny_data, tmp_path, trained):
    def drop_box_head(state_dict):
        for key in [k for k in state_dict if k.startswith('roi_head.bbox_head.')]:
            del state_dict[key]
    path = edited(trained, tmp_path, drop_box_head)
    with pytest.raises(CheckpointMismatchError, match=r'(?s)missing \(roi_head.bbox_head: \d+\)'):
        run_test_tool(tiny_data, tmp_path, path)


def test_partial_load_loads_what_fits_and_counts_the_rest(tiny_data, tmp_path, trained):
    def drop_box_head(state_dict):
        del state_dict['roi_head.bbox_head.fc_cls.weight']
    path = edited(trained, tmp_path, drop_box_head)
    cfg = tiny_config(tiny_data, tmp_path / 'work', load_from=str(path), partial_load=True,
                        **{'train_cfg.max_epochs': 0})
    runner = build_runner(cfg)
    runner.train()
    expected = load_checkpoint_file(trained)['state_dict']['backbone.patch_embed.proj.weight']
    assert torch.equal(runner.model.backbone.patch_embed.proj.weight, expected)
    log = open(runner.logger.handlers[-1].baseFilename).read()
    assert '1 missing' in log and 'roi_head.bbox_head.fc_cls.weight' in log


def test_a_nan_tensor_in_a_detector_checkpoint_is_named(tiny_data, tmp_path, trained):
    def poison(state_dict):
        state_dict['roi_head.mask_head.conv_logits.bias'][0] = float('nan')
    path = edited(trained, tmp_path, poison)
    with pytest.raises(CheckpointMismatchError,
                       match=r'roi_head.mask_head.conv_logits.bias \(1 values\)'):
        run_test_tool(tiny_data, tmp_path, path)
    with pytest.raises(CheckpointMismatchError, match='NaN or inf'):  # even with partial_load
        run_test_tool(tiny_data, tmp_path, path, '--cfg-options', 'partial_load=True')


def test_a_nan_tensor_in_pretrained_backbone_weights_is_named(tiny_data, tmp_path):
    raw = fake.dinov2(64)
    raw['blocks.1.attn.proj.weight'][3, 4] = float('inf')
    torch.save(raw, tmp_path / 'dinov2_vits14_pretrain.pth')
    cfg = tiny_config(tiny_data, tmp_path / 'work', **{
        'train_cfg.max_epochs': 1, 'model.backbone.pretrain_size': 592,
        'model.backbone.img_size': 592,
        'model.backbone.pretrained': str(tmp_path / 'dinov2_vits14_pretrain.pth')})
    with pytest.raises(CheckpointError, match=r'blocks.1.attn.proj.weight \(1 values\)'):
        build_runner(cfg).train()


def test_out_indices_that_disagree_with_the_neck_name_both_keys(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path, **{'model.backbone.out_indices': (1, 2, 3)})
    with pytest.raises(ValueError, match=r'(?s)model.backbone.out_indices.*model.neck.in_channels'):
        build_runner(cfg)


# ------------------------------------------------------------------ trust is scoped to its run
def test_trust_ends_with_a_run_that_failed(tiny_data, tmp_path):
    """A trusted run that fails after it started leaves no trust behind for a later load."""
    evil = tmp_path / 'evil.pth'
    torch.save({'meta': Payload(tmp_path / 'RAN')},
               evil)
    cfg = tiny_config(tiny_data, tmp_path / 'work', trust_checkpoint=True,
                        **{'train_cfg.max_epochs': 1, 'model.backbone.pretrained':
                           str(tmp_path / 'not_there.pth')})
    with pytest.raises(FileNotFoundError):
        build_runner(cfg).train()  # fails in init_weights, after before_run
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(evil)
    assert not (tmp_path / 'RAN').exists()


def test_trust_in_one_thread_is_not_trust_in_another(tmp_path):
    from mmdet_dinov2.checkpoints import checkpoints_trusted, trusted_checkpoints
    seen = []
    with trusted_checkpoints():
        thread = threading.Thread(target=lambda: seen.append(checkpoints_trusted()))
        thread.start()
        thread.join()
        assert checkpoints_trusted()
    assert seen == [False] and not checkpoints_trusted()


def test_init_cfg_trust_is_refused_as_a_second_switch(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path, **{'model.backbone.init_cfg': dict(
        type='Pretrained', checkpoint='x.pth', trust=True)})
    with pytest.raises(ValueError, match="'trust' is not read here.*trust_checkpoint = True"):
        build_runner(cfg).train()


# ------------------------------------------------------------------ URLs
def test_urls_work_for_the_test_tool_load_from_and_pretrained(tiny_data, tmp_path, trained):
    raw = fake.dinov2(64)
    torch.save(raw, tmp_path / 'dinov2_vits14_pretrain.pth')
    os.link(trained, tmp_path / 'detector.pth')
    with serve_folder(tmp_path) as url:
        metrics = run_test_tool(tiny_data, tmp_path, f'{url}/detector.pth')
        assert 'coco/bbox_mAP' in metrics
        cfg = tiny_config(tiny_data, tmp_path / 'work', load_from=f'{url}/detector.pth',
                            **{'train_cfg.max_epochs': 0})
        runner = build_runner(cfg)
        runner.train()
        expected = load_checkpoint_file(trained)['state_dict']['rpn_head.rpn_conv.weight']
        assert torch.equal(runner.model.rpn_head.rpn_conv.weight, expected)
        cfg = tiny_config(tiny_data, tmp_path / 'work2', **{
            'train_cfg.max_epochs': 0, 'model.backbone.pretrain_size': 592,
            'model.backbone.img_size': 592,
            'model.backbone.pretrained': f'{url}/dinov2_vits14_pretrain.pth'})
        runner = build_runner(cfg)
        runner.train()
    assert torch.equal(runner.model.backbone.blocks[1].attn.qkv.weight,
                       raw['blocks.1.attn.qkv.weight'])


def test_the_download_cache_is_keyed_by_the_whole_url(tmp_path):
    for name, value in (('a', 1.0), ('b', 2.0)):
        (tmp_path / name).mkdir()
        torch.save({'w': torch.full((2,), value)}, tmp_path / name / 'model.pth')
    with serve_folder(tmp_path) as url:
        first = load_checkpoint_file(f'{url}/a/model.pth')
        second = load_checkpoint_file(f'{url}/b/model.pth')
    assert first['w'][0] == 1.0 and second['w'][0] == 2.0


def test_a_hash_in_the_file_name_is_verified(tmp_path):
    torch.save({'w': torch.ones(2)}, tmp_path / 'model-0123abcd.pth')
    with serve_folder(tmp_path) as url, pytest.raises(DownloadError, match='SHA-256'):
        load_checkpoint_file(f'{url}/model-0123abcd.pth')
    assert not list((tmp_path.parent).glob('**/hub/checkpoints/*model-0123abcd.pth'))


def test_a_download_is_cached_whole_and_a_failed_one_not_at_all(tmp_path):
    from mmdet_dinov2.checkpoints.remote import cache_path
    served = tmp_path / 'served'
    served.mkdir()
    torch.save({'w': torch.ones(2)}, served / 'model.pth')
    data = (served / 'model.pth').read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:8]
    (served / f'model-{digest}.pth').write_bytes(data)
    (served / 'vit-b.pth').write_bytes(data)  # '-b.' is no hash (torch.hub's own rule reads one)
    with serve_folder(served) as url:
        for name in ('model.pth', f'model-{digest}.pth', 'vit-b.pth'):  # the 2nd one's hash is verified
            assert torch.equal(load_checkpoint_file(f'{url}/{name}')['w'], torch.ones(2))
        with pytest.raises(DownloadError, match=r'cannot download .*absent\.pth: File not found'):
            load_checkpoint_file(f'{url}/absent.pth')
    cached = cache_path(f'{url}/model.pth')
    assert cached.read_bytes() == data
    names = [p.name for p in cached.parent.iterdir()]
    assert cache_path(f'{url}/absent.pth').name not in names
    assert not [name for name in names if name.startswith('.') or name.endswith('.partial')]
    assert torch.equal(load_checkpoint_file(f'{url}/model.pth')['w'], torch.ones(2))  # server gone


def test_a_server_that_never_answers_times_out(monkeypatch):
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(1)  # accepts connections, never answers
    monkeypatch.setenv('MMDET_DINOV2_DOWNLOAD_TIMEOUT', '0.5')
    try:
        with pytest.raises(DownloadError, match=r'no answer within 0.5 s'):
            load_checkpoint_file(f'http://127.0.0.1:{server.getsockname()[1]}/model.pth')
    finally:
        server.close()
    assert socket.getdefaulttimeout() is None  # the download's timeout does not outlive it


# ------------------------------------------------------------------ resume
def test_resume_with_nothing_to_resume_stops(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / 'typo', **{'train_cfg.max_epochs': 1})
    cfg.dump(str(tmp_path / 'cfg.py'))
    train = load_tool('tools/train.py').main
    with pytest.raises(SystemExit, match=r'nothing to resume in .*typo.*drop --resume'):
        train([str(tmp_path / 'cfg.py'), '--resume'])
    assert not (tmp_path / 'typo' / 'epoch_1.pth').exists()
    train([str(tmp_path / 'cfg.py'), '--resume-if-exists'])  # asked to start over
    assert (tmp_path / 'typo' / 'epoch_1.pth').is_file()


def test_resume_with_an_empty_or_dangling_pointer_names_it(tiny_data, tmp_path, trained):
    work = tmp_path / 'work'
    work.mkdir()
    os.link(trained, work / 'epoch_1.pth')
    cfg = tiny_config(tiny_data, work, resume=True, **{'train_cfg.max_epochs': 2})
    (work / 'last_checkpoint').write_text('')
    with pytest.raises(RuntimeError, match=r'last_checkpoint is empty.*epoch_1.pth'):
        build_runner(cfg).train()
    (work / 'last_checkpoint').write_text(str(work / 'epoch_9.pth'))
    with pytest.raises(RuntimeError, match=r'names .*epoch_9.pth, which does not exist'):
        build_runner(cfg).train()


def test_resuming_another_configs_checkpoint_is_refused_before_training(
        tiny_data, tmp_path, trained):
    """Same model, other optimizer grouping (no layer decay): torch would fail inside AdamW."""
    cfg = tiny_config(tiny_data, tmp_path / 'work', resume=True, load_from=str(trained), **{
        'train_cfg.max_epochs': 2, 'optim_wrapper.paramwise_cfg': None,
        'optim_wrapper.constructor': 'DefaultOptimWrapperConstructor'})
    with pytest.raises(RuntimeError, match=r'optimizer state was saved for other parameters'):
        build_runner(cfg).train()


# ------------------------------------------------------------------ concurrent runs
def test_a_second_training_in_a_busy_work_dir_is_refused(tiny_data, tmp_path):
    work = tmp_path / 'work'
    holder = subprocess.Popen([sys.executable, '-c', textwrap.dedent(f'''
        import sys, time
        from mmdet_dinov2.engine.work_dir_lock import WorkDirLock
        with WorkDirLock({str(work)!r}):
            print('locked', flush=True)
            time.sleep(120)
        ''')], stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        while (line := holder.stdout.readline()) and line.strip() != 'locked':
            pass  # the package's import prints a line first
        assert line.strip() == 'locked'
        tiny_config(tiny_data, work, **{'train_cfg.max_epochs': 1}).dump(str(tmp_path / 'c.py'))
        with pytest.raises(SystemExit, match=rf'in use by another training: process {holder.pid} '):
            load_tool('tools/train.py').main([str(tmp_path / 'c.py')])
        assert not (work / 'epoch_1.pth').exists()
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------ clearer errors
def test_object_arrays_are_reported_as_an_allow_list_refusal(tmp_path):
    import numpy as np
    torch.save({'meta': {'ids': np.array([1, 'a'], dtype=object)}}, tmp_path / 'obj.pth')
    with pytest.raises(UnsafeCheckpointError, match='numpy.dtypes.ObjectDType'):
        load_checkpoint_file(tmp_path / 'obj.pth')


def test_a_directory_or_a_symlink_loop_is_named_as_such(tmp_path):
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / 'epoch_3.pth').write_bytes(b'x')
    with pytest.raises(CheckpointError, match=r'is a directory.*epoch_3.pth'):
        load_checkpoint_file(tmp_path / 'run')
    os.symlink(tmp_path / 'b.pth', tmp_path / 'a.pth')
    os.symlink(tmp_path / 'a.pth', tmp_path / 'b.pth')
    with pytest.raises(CheckpointError, match='loop of symbolic links'):
        load_checkpoint_file(tmp_path / 'a.pth')


def test_a_config_can_switch_off_our_default_hooks(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path, **{'default_hooks.reseed': None})
    names = [type(hook).__name__ for hook in build_runner(cfg).hooks]
    assert 'ReseedHook' not in names and 'NonFiniteLossHook' in names
