"""NonFiniteLossHook and ReseedHook are default hooks: a user config that sets custom_hooks (a list,
which mmengine replaces whole on inheritance) keeps them, and they run where they would run as custom hooks."""
from pathlib import Path

import pytest
from mmengine.config import Config

import mmdet_dinov2  # noqa: F401  (registers the hooks and the runner)
from mmdet.registry import RUNNERS

ROOT = Path(__file__).resolve().parents[2]
S_CONFIG = ROOT / 'configs' / 'vit_adapter' / 'mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py'
TINY_CONFIG = ROOT / 'tests' / 'tools' / 'tiny_config.py'  # the S config at dim 64, depth 2
OURS = ('NonFiniteLossHook', 'ReseedHook')


def _user_config(tmp_path, base, body):
    path = tmp_path / 'user_config.py'
    path.write_text(f"_base_ = '{base}'\n{body}\n")
    return Config.fromfile(str(path))


def _runner(cfg, work_dir):
    """The runner the tools build (runner_type: SafeLoadRunner); dataloaders are built lazily."""
    cfg.work_dir = str(work_dir)
    return RUNNERS.build(cfg)


def _hook_types(runner):
    return [type(hook).__name__ for hook in runner.hooks]


def test_user_custom_hooks_keep_ours_in_the_merged_config(tmp_path):
    cfg = _user_config(tmp_path, S_CONFIG, "custom_hooks = [dict(type='EMAHook')]")
    assert cfg.custom_hooks == [dict(type='EMAHook')]
    assert cfg.default_hooks.non_finite_loss == dict(type='NonFiniteLossHook')
    assert cfg.default_hooks.reseed == dict(type='ReseedHook')


def test_user_custom_hooks_keep_ours_on_the_built_runner(tmp_path):
    cfg = _user_config(tmp_path, TINY_CONFIG, "custom_hooks = [dict(type='EMAHook')]")
    types = _hook_types(_runner(cfg, tmp_path / 'work'))
    assert set(OURS) | {'EMAHook', 'AtomicCheckpointHook'} <= set(types)
    assert all(types.count(name) == 1 for name in OURS)


def test_hooks_run_in_the_order_they_had_as_custom_hooks(tmp_path):
    """Their priorities are class attributes (ReseedHook VERY_HIGH, NonFiniteLossHook ABOVE_NORMAL),
    so as default hooks they keep the place they would take as custom hooks."""
    default = _hook_types(_runner(Config.fromfile(str(TINY_CONFIG)), tmp_path / 'default'))
    custom = Config.fromfile(str(TINY_CONFIG))  # both as custom hooks instead
    custom.default_hooks.pop('non_finite_loss')
    custom.default_hooks.pop('reseed')
    custom.custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='ReseedHook')]
    assert _hook_types(_runner(custom, tmp_path / 'custom')) == default
    assert default.index('ReseedHook') == 1  # right after RuntimeInfoHook (both VERY_HIGH)


@pytest.mark.parametrize('key, value', [('runner_type', 'SafeLoadRunner'), ('trust_checkpoint', False),
                                        ('partial_load', False), ('custom_hooks', [])])
def test_runtime_settings(key, value):
    assert Config.fromfile(str(ROOT / 'configs' / '_base_' / 'default_runtime.py'))[key] == value
