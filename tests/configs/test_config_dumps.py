"""Splitting the base config by concern left every config's content as it was, leaf by leaf,
except for the changes listed here (tests/configs/config_dump.py holds the references)."""
import importlib.util
from pathlib import Path

import pytest
from mmengine.config import Config

_spec = importlib.util.spec_from_file_location('config_dump', Path(__file__).with_name('config_dump.py'))
config_dump = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(config_dump)
DUMPED, ROOT = config_dump.DUMPED, config_dump.ROOT
flatten, load_reference = config_dump.flatten, config_dump.load_reference

MISSING = '<missing>'
# leaf path -> (reference value, value now); MISSING where the key is absent on that side.
DELIBERATE = {
    # NonFiniteLossHook and ReseedHook are default hooks now: a config that sets custom_hooks (a
    # list, replaced whole on inheritance) can no longer drop them without a word
    'custom_hooks': (MISSING, []),
    'custom_hooks.0.type': ('NonFiniteLossHook', MISSING),
    'custom_hooks.1.type': ('ReseedHook', MISSING),
    'default_hooks.non_finite_loss.type': (MISSING, 'NonFiniteLossHook'),
    'default_hooks.reseed.type': (MISSING, 'ReseedHook'),
    # the runtime states the runner's default (strict load_from) instead of leaving it implicit
    'partial_load': (MISSING, False),
}
# The backbone files' two names, which each detector config hands on to model.backbone and
# optim_wrapper.paramwise_cfg, are new top-level keys (mmengine refuses a model or optim_wrapper
# key defined by two files of one _base_ list, so a backbone file cannot set those itself).
EXPORTED = ('backbone', 'layer_decay')


def _typed(value):
    """A leaf with its type: 1 and True, 1 and 1.0 differ here."""
    return value if value == MISSING else (type(value).__name__, value)


def _differences(reference, now):
    return {key: (reference.get(key, MISSING), now.get(key, MISSING))
            for key in sorted(reference.keys() | now.keys())
            if _typed(reference.get(key, MISSING)) != _typed(now.get(key, MISSING))}


def _backbone_file(path):
    size = path.stem.split('dinov2-adapter-')[1][0]  # s, b, l, g (the sweep is S)
    return ROOT / 'configs' / '_base_' / 'models' / f'vit-adapter_dinov2-{size}.py'


@pytest.mark.parametrize('path', DUMPED, ids=lambda p: p.name)
def test_config_content_is_the_reference(path):
    now = flatten(Config.fromfile(str(path)))
    differences = _differences(load_reference(path), now)
    exported = {k: v for k, v in differences.items() if k.split('.')[0] in EXPORTED}
    assert {k: v for k, v in differences.items() if k not in exported} == DELIBERATE
    backbone_file = Config.fromfile(str(_backbone_file(path)))
    assert exported == {k: (MISSING, v) for k, v in
                        flatten({name: backbone_file[name] for name in EXPORTED}).items()}


@pytest.mark.parametrize('path', config_dump.SIZE_CONFIGS, ids=lambda p: p.name)
def test_exported_names_are_what_the_model_uses(path):
    cfg = Config.fromfile(str(path))
    assert cfg.backbone == cfg.model.backbone
    assert cfg.layer_decay == cfg.optim_wrapper.paramwise_cfg


def test_differences_are_found_key_by_key():
    reference = {'a.b': 1, 'a.c': [], 'd.0': ('tuple', 1), 'd.0.0': 0.5}
    now = {'a.b': True, 'a.c': [], 'd.0.0': 0.5, 'e': None}
    assert _differences(reference, now) == {
        'a.b': (1, True), 'd.0': (('tuple', 1), MISSING), 'e': (MISSING, None)}
