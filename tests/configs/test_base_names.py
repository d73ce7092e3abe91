"""Every top-level name a base file under configs/_base_/ defines takes effect when a config that
inherits the file overrides it. mmengine evaluates each config file on its own: a helper name read
into another key of its file (``depth = 12`` ... ``backbone=dict(depth=depth)``), or handed on to a
child that reads it (``_base_.backbone``), is copied at that moment, so a later config that
overrides the name changes the name and nothing the runner builds."""
import ast
import functools
import inspect
import tempfile
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

ROOT = Path(__file__).resolve().parents[2]
BASE_FILES = sorted((ROOT / 'configs' / '_base_').rglob('*.py'))
# What the runner is built from: the keys Runner.from_cfg hands to Runner, and those read beside it:
# runner_type (the tools choose the runner class by it), custom_imports (Config.fromfile imports
# them), trust_checkpoint and partial_load (SafeLoadRunner reads them from its config).
BUILT_FROM = (set(inspect.signature(Runner.__init__).parameters) - {'self', 'cfg'}
              | {'runner_type', 'custom_imports', 'trust_checkpoint', 'partial_load'})
SENTINEL = 'set by a child config'


def _assigned_names(path):
    """The top-level names a config file assigns, in its own text (its bases' names not included)."""
    names = []
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, 'target', None)]
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id != '_base_']
    return names


def _mmdet_names(path):
    """The top-level names of the mmdet bases that ``path`` inherits directly."""
    bases = next((ast.literal_eval(node.value) for node in ast.parse(path.read_text()).body
                  if isinstance(node, ast.Assign)
                  and any(getattr(t, 'id', None) == '_base_' for t in node.targets)), [])
    bases = [bases] if isinstance(bases, str) else bases
    return {name for base in bases if base.startswith('mmdet::')
            for name in _load_text(f'_base_ = {base!r}\n').keys()}


def _load_text(text):
    with tempfile.TemporaryDirectory() as folder:
        child = Path(folder) / 'child.py'
        child.write_text(text)
        return Config.fromfile(str(child), import_custom_modules=False)


def _override(value):
    """A value that, written in a child config, changes one leaf of ``value``: a dict is merged
    into, so the change goes down to its first public key; anything else is replaced whole."""
    if isinstance(value, dict):
        key = next((k for k in value if not k.startswith('_')), None)
        if key is not None:
            return {key: _override(value[key])}
    return SENTINEL


@functools.cache
def _parsed(path):
    return Config.fromfile(str(path), import_custom_modules=False)


def _changed_by_override(path, name):
    """The top-level keys whose merged value changes when a config inheriting ``path`` sets ``name``."""
    parent = _parsed(path)
    child = _load_text(f'_base_ = {str(path)!r}\n{name} = {_override(parent[name])!r}\n')
    return {key for key in parent.keys() | child.keys() if parent.get(key) != child.get(key)}


def _cases():
    for path in BASE_FILES:
        from_mmdet = _mmdet_names(path)
        for name in _assigned_names(path):
            # mmdet's dataset bases name their pipeline `train_pipeline` and read it into
            # train_dataloader: the name comes with mmdet's base whatever a file here does
            if name in BUILT_FROM or name not in from_mmdet:
                yield path, name


CASES = list(_cases())


def test_every_base_file_is_checked():
    assert {path for path, _ in CASES} == set(BASE_FILES)


@pytest.mark.parametrize('path, name', CASES,
                         ids=[f'{p.relative_to(ROOT / "configs" / "_base_")}:{n}' for p, n in CASES])
def test_overriding_a_base_name_changes_what_is_built(path, name):
    changed = _changed_by_override(path, name)
    assert changed & BUILT_FROM, (
        f'{path.relative_to(ROOT)}: a config that inherits it and sets `{name}` changes only '
        f'{sorted(changed)}, nothing the runner builds; state the value where it is used '
        '(model.backbone, optim_wrapper.paramwise_cfg, train_cfg, ...) and remove the name')


def test_a_helper_name_is_caught(tmp_path):
    """The check above fails for the names it exists to keep out: one read into another key of its
    file, and one handed on for a child to read."""
    base = tmp_path / 'base.py'
    base.write_text("depth = 12\nmodel = dict(backbone=dict(depth=depth))\n"
                    "backbone = dict(type='ViTAdapter')\n")
    assert _changed_by_override(base, 'depth') == {'depth'}
    assert _changed_by_override(base, 'backbone') == {'backbone'}
    assert _changed_by_override(base, 'model') == {'model'}
