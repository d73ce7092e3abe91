"""What tools/train.py and tools/test.py do before the runner starts, and how load_from loads."""
import gc
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.logging import MMLogger

import mmdet_dinov2  # noqa: F401
from mmdet_dinov2.checkpoints import UnsafeCheckpointError, load_state_dict_file
from mmdet_dinov2.engine.launch import adapt_to_cpu, close_process_group, load_config
from mmdet_dinov2.engine.runner import load_detector_weights
from tests import fake_checkpoints as fake
from tests.helpers import load_tool

_train = load_tool('tools/train.py')  # the pretrained-file check is the train tool's
MissingPretrainedError, check_pretrained_files = _train.MissingPretrainedError, _train.check_pretrained_files

register_all_modules(init_default_scope=False)
ROOT = Path(__file__).resolve().parents[2]
CONFIG = 'configs/vit_adapter/mask-rcnn_dinov2-adapter-{}_fpn_3x_coco.py'
TINY = str(ROOT / 'tests' / 'tools' / 'tiny_config.py')
ARCH = dict(s='vits14', b='vitb14', l='vitl14', g='vitg14')


def _tool(name):
    return load_tool(f'tools/{name}.py')


@pytest.mark.parametrize('size', ['s', 'b', 'l', 'g'])
def test_missing_pretrained_file_says_how_to_get_it(size, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no pretrained/ folder here
    cfg = Config.fromfile(str(ROOT / CONFIG.format(size)))
    with pytest.raises(MissingPretrainedError) as err:
        check_pretrained_files(cfg)
    arch = ARCH[size]
    message = str(err.value)
    assert f'pretrained/dinov2_{arch}_pretrain_14to16.pth' in message
    assert (f'https://dl.fbaipublicfiles.com/dinov2/dinov2_{arch}/dinov2_{arch}_pretrain.pth'
            in message)
    assert f'python tools/convert_14to16.py pretrained/dinov2_{arch}_pretrain.pth' in message


def test_present_remote_or_no_pretrained_file_passes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(str(ROOT / CONFIG.format('s')))
    (tmp_path / 'pretrained').mkdir()
    (tmp_path / 'pretrained' / 'dinov2_vits14_pretrain_14to16.pth').write_bytes(b'x')
    check_pretrained_files(cfg)
    for path in ('https://example.org/w.pth', None):
        cfg.model.backbone.pretrained = path
        check_pretrained_files(cfg)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint='elsewhere/w.pth')
    with pytest.raises(MissingPretrainedError, match='model.backbone.init_cfg.checkpoint'):
        check_pretrained_files(cfg)


def test_train_tool_stops_before_building_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        _tool('train').main([str(ROOT / CONFIG.format('l')), '--work-dir', str(tmp_path / 'w')])
    assert 'dinov2_vitl14/dinov2_vitl14_pretrain.pth' in str(exit_.value.code)
    assert not (tmp_path / 'w').exists()


def test_train_arguments(tmp_path):
    train = _tool('train')
    cfg = load_config(TINY, str(tmp_path))
    train.apply_args(cfg, train.parse_args([TINY, '--resume', '--amp', '--auto-scale-lr']))
    assert (cfg.resume, cfg.load_from) == (True, None)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.auto_scale_lr.enable
    assert cfg.optim_wrapper.constructor == 'LayerDecayOptimizerConstructor'
    train.apply_args(cfg, train.parse_args([TINY, '--resume', 'w/epoch_3.pth']))
    assert (cfg.resume, cfg.load_from) == (True, 'w/epoch_3.pth')
    assert load_config(TINY).work_dir == './work_dirs/tiny_config'
    options = train.parse_args([TINY, '--cfg-options', 'train_cfg.max_epochs=5']).cfg_options
    assert load_config(TINY, cfg_options=options).train_cfg.max_epochs == 5
    with pytest.raises(FileNotFoundError, match='no_such.py'):
        load_config('no_such.py')


def test_test_arguments(tmp_path):
    test = _tool('test')
    checkpoint = tmp_path / 'w.pth'
    checkpoint.write_bytes(b'x')
    cfg = load_config(TINY, str(tmp_path))
    args = test.parse_args([TINY, str(checkpoint), '--out', 'p.pkl', '--show-dir', 'vis'])
    test.apply_args(cfg, args)
    assert cfg.load_from == str(checkpoint)
    assert cfg.test_evaluator[-1] == dict(type='DumpDetResults', out_file_path='p.pkl')
    assert cfg.test_evaluator[0].type == 'CocoMetric'
    assert cfg.default_hooks.visualization.draw and cfg.default_hooks.visualization.test_out_dir
    with pytest.raises(SystemExit):
        test.parse_args([TINY, str(checkpoint), '--out', 'p.json'])
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        test.apply_args(cfg, test.parse_args([TINY, 'missing.pth']))


@pytest.mark.parametrize('launcher', ['none', 'pytorch'])
def test_cpu_adaptation(launcher):
    cfg = load_config(str(ROOT / CONFIG.format('s')), launcher=launcher)
    changes = adapt_to_cpu(cfg)
    if torch.cuda.is_available():  # nothing to adapt
        assert changes == [] and cfg.model.backbone.norm_cfg.type == 'SyncBN'
        return
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model.backbone.norm_cfg.type == 'BN'
    assert 'SyncBN' not in cfg.pretty_text
    if launcher == 'pytorch':
        assert cfg.model_wrapper_cfg.device_ids is None
        assert cfg.model_wrapper_cfg.type == 'MMDistributedDataParallel'
        # the processes' BN statistics are averaged, by one hook however often it is adapted
        adapt_to_cpu(cfg)
        assert [h['type'] for h in cfg.custom_hooks].count('SyncBuffersHook') == 1
    else:
        assert 'model_wrapper_cfg' not in cfg
        assert all(h['type'] != 'SyncBuffersHook' for h in cfg.custom_hooks)
    assert len(changes) == (4 if launcher == 'pytorch' else 2)


# Parameter names of mmdet 2.22's Mask R-CNN outside the backbone, from its module definitions
# (FPN: ConvModule lateral/fpn convs; RPNHead._init_layers; ConvFCBBoxHead with two shared fcs;
# FCNMaskHead with four ConvModule convs, a deconv upsample and conv_logits).
MMDET2_HEAD_KEYS = (
    [f'neck.{kind}.{i}.conv.{p}' for kind in ('lateral_convs', 'fpn_convs') for i in range(4)
     for p in ('weight', 'bias')]
    + [f'rpn_head.rpn_{m}.{p}' for m in ('conv', 'cls', 'reg') for p in ('weight', 'bias')]
    + [f'roi_head.bbox_head.{m}.{p}' for m in ('fc_cls', 'fc_reg', 'shared_fcs.0', 'shared_fcs.1')
       for p in ('weight', 'bias')]
    + [f'roi_head.mask_head.{m}.{p}' for m in
       ('convs.0.conv', 'convs.1.conv', 'convs.2.conv', 'convs.3.conv', 'upsample', 'conv_logits')
       for p in ('weight', 'bias')])


def test_mmdet3_heads_keep_the_mmdet2_parameter_names():
    cfg = Config.fromfile(str(ROOT / CONFIG.format('s')))
    cfg.model.backbone.pretrained = None
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    keys = [k for k in model.state_dict() if not k.startswith('backbone.')]
    assert sorted(keys) == sorted(MMDET2_HEAD_KEYS)


def _tiny_detector(seed):
    cfg = Config.fromfile(TINY)
    cfg.model.backbone.norm_cfg = dict(type='BN', requires_grad=True)
    torch.manual_seed(seed)
    return MODELS.build(cfg.model).eval()


def test_mmdet2_checkpoint_loads_with_every_key(tmp_path):
    """A checkpoint laid out as mmdet 2.x saved the original's: meta, state_dict, optimizer."""
    state_dict = _tiny_detector(0).state_dict()
    path = tmp_path / 'mask_rcnn_dinov2_adapter_small_fpn_3x_coco.pth'
    torch.save(fake.vit_adapter_detector(state_dict, classes=('circle', 'triangle')), path)
    target = _tiny_detector(1)
    report = load_detector_weights(target, load_state_dict_file(path))
    assert report.missing == [] and report.unexpected == [] and report.complete
    loaded = target.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state_dict.items())


def test_load_from_reports_missing_and_unexpected_keys():
    from mmdet_dinov2.checkpoints import CheckpointMismatchError
    model = _tiny_detector(0)
    state_dict = dict(model.state_dict())
    state_dict.pop('rpn_head.rpn_cls.weight')
    state_dict['backbone.extra.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match=r'(?s)rpn_head.rpn_cls.weight.*'
                       r'backbone.extra.weight.*partial_load = True'):
        load_detector_weights(model, state_dict, source='x.pth')
    report = load_detector_weights(model, state_dict, partial=True)
    assert report.missing == ['rpn_head.rpn_cls.weight']
    assert report.unexpected == ['backbone.extra.weight']


class _Payload:
    def __reduce__(self):
        return (print, ('payload ran',))


def test_runner_load_from_refuses_a_pickle_payload(tmp_path):
    from mmdet_dinov2.engine.runner import SafeLoadRunner
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, meta=_Payload()), path)
    runner = SafeLoadRunner.__new__(SafeLoadRunner)  # only what load_checkpoint reads first
    runner.logger = MMLogger.get_current_instance()
    with pytest.raises(UnsafeCheckpointError):
        runner.load_checkpoint(str(path))


def test_vis_backend_flag_adds_tensorboard_and_wandb_once():
    train = _tool('train')
    cfg = load_config(TINY)
    train.apply_args(cfg, train.parse_args([TINY, '--vis-backend', 'tensorboard',
                                            '--vis-backend', 'wandb', '--vis-backend', 'wandb']))
    assert [b['type'] for b in cfg.visualizer.vis_backends] == [
        'LocalVisBackend', 'TensorboardVisBackend', 'WandbVisBackend']
    with pytest.raises(SystemExit):
        train.parse_args([TINY, '--vis-backend', 'mlflow'])


@pytest.mark.skipif(not os.path.isdir('/proc/self/task'), reason="counts threads in Linux's /proc")
def test_close_process_group_joins_the_gloo_threads_a_ddp_cycle_keeps(tmp_path):
    """The runner keeps its DDP wrapper, and so the group, in reference cycles: destroying the group
    alone leaves gloo's threads running until interpreter exit, where they can abort the process."""
    def threads():
        return len(os.listdir('/proc/self/task'))

    def step(model):
        model(torch.ones(2, 3)).sum().backward()

    close_process_group()  # no group: nothing to do
    step(torch.nn.Linear(3, 2))  # torch's own thread pools start before the count
    before = threads()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # only close_process_group may collect the cycle
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/rendezvous', rank=0,
                            world_size=1)
    try:
        runner = dict(model=torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 2)))
        runner['self'] = runner
        step(runner['model'])
        del runner
        assert threads() > before
        close_process_group()
        assert not dist.is_initialized()
        assert threads() == before
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        if gc_was_enabled:
            gc.enable()
