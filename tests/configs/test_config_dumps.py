"""Splitting the base config by concern left every config's content as it was, leaf by leaf,
except for the changes listed in DELIBERATE (tests/configs/config_dump.py holds the references)."""
import importlib.util
from pathlib import Path

import pytest
from mmengine.config import Config

_spec = importlib.util.spec_from_file_location('config_dump', Path(__file__).with_name('config_dump.py'))
config_dump = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(config_dump)
DUMPED, flatten, load_reference = config_dump.DUMPED, config_dump.flatten, config_dump.load_reference

MISSING = '<missing>'
# leaf path -> (reference value, value now); MISSING where the key is absent on that side
DELIBERATE = {}


def _typed(value):
    """A leaf with its type: 1 and True, 1 and 1.0 differ here."""
    return value if value == MISSING else (type(value).__name__, value)


def _differences(reference, now):
    return {key: (reference.get(key, MISSING), now.get(key, MISSING))
            for key in sorted(reference.keys() | now.keys())
            if _typed(reference.get(key, MISSING)) != _typed(now.get(key, MISSING))}


@pytest.mark.parametrize('path', DUMPED, ids=lambda p: p.name)
def test_config_content_is_the_reference(path):
    assert _differences(load_reference(path), flatten(Config.fromfile(str(path)))) == DELIBERATE


def test_differences_are_found_key_by_key():
    reference = {'a.b': 1, 'a.c': [], 'd.0': ('tuple', 1), 'd.0.0': 0.5}
    now = {'a.b': True, 'a.c': [], 'd.0.0': 0.5, 'e': None}
    assert _differences(reference, now) == {
        'a.b': (1, True), 'd.0': (('tuple', 1), MISSING), 'e': (MISSING, None)}
