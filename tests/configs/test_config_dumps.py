"""Every config's merged content equals its reference dump, leaf by leaf, except for the deliberate
differences listed here: the split of the base config by concern and the chained backbone files
change no value by accident (tests/configs/config_dump.py holds the references)."""
import pytest

from tests.configs.config_dump import DUMPED, flatten, load_reference, merged

MISSING = '<missing>'
# leaf path -> (reference value, value now); MISSING where the key is absent on that side.
DELIBERATE = {
    # NonFiniteLossHook and ReseedHook are default hooks (custom hooks in the reference): a config
    # that sets custom_hooks (a list, replaced whole on inheritance) cannot drop them without a word
    'custom_hooks': (MISSING, []),
    'custom_hooks.0.type': ('NonFiniteLossHook', MISSING),
    'custom_hooks.1.type': ('ReseedHook', MISSING),
    'default_hooks.non_finite_loss.type': (MISSING, 'NonFiniteLossHook'),
    'default_hooks.reseed.type': (MISSING, 'ReseedHook'),
    # the runtime states the runner's default (strict load_from) instead of leaving it implicit
    'partial_load': (MISSING, False),
}
# Top-level helper names, each read once into the keys that use it (depth into model.backbone and
# the layer decay, max_epochs into train_cfg and the lr schedule, multiscale into the train
# pipeline): a config inheriting them could override the name and change nothing. Their values stay
# in those keys; the configs no longer define the names (tests/configs/test_base_names.py).
REMOVED_HELPERS = ('depth', 'max_epochs', 'multiscale')


def _typed(value):
    """A leaf with its type: 1 and True, 1 and 1.0 differ here."""
    return value if value == MISSING else (type(value).__name__, value)


def _differences(reference, now):
    return {key: (reference.get(key, MISSING), now.get(key, MISSING))
            for key in sorted(reference.keys() | now.keys())
            if _typed(reference.get(key, MISSING)) != _typed(now.get(key, MISSING))}


@pytest.mark.parametrize('path', DUMPED, ids=lambda p: p.name)
def test_config_content_is_the_reference(path):
    reference = load_reference(path)
    differences = _differences(reference, flatten(merged(path)))
    removed = {k: v for k, v in differences.items() if k.split('.')[0] in REMOVED_HELPERS}
    assert {k: v for k, v in differences.items() if k not in removed} == DELIBERATE
    assert removed == {k: (v, MISSING) for k, v in reference.items()
                       if k.split('.')[0] in REMOVED_HELPERS}


def test_differences_are_found_key_by_key():
    reference = {'a.b': 1, 'a.c': [], 'd.0': ('tuple', 1), 'd.0.0': 0.5}
    now = {'a.b': True, 'a.c': [], 'd.0.0': 0.5, 'e': None}
    assert _differences(reference, now) == {
        'a.b': (1, True), 'd.0': (('tuple', 1), MISSING), 'e': (MISSING, None)}
