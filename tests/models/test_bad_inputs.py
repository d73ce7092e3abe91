"""Backbone arguments that disagree, through the user's path (config -> runner): an error naming
the keys and their values."""
import pytest

from tests.helpers import build_runner, tiny_config

pytestmark = pytest.mark.usefixtures('plain_config_text', 'one_thread')


@pytest.mark.parametrize('options, expected', [
    ({'model.backbone.interaction_indexes': [[0, 0], [2, 3]]}, 'does not fit depth=2'),
    ({'model.backbone.window_attn': [True, False, True]}, 'window_attn has 3 entries but depth=2'),
    ({'model.backbone.window_size': [4]}, 'window_size has 1 entries but depth=2'),
    ({'model.backbone.depth': 3}, 'window_attn has 2 entries but depth=3'),
], ids=['interaction_indexes', 'window_attn', 'window_size', 'depth'])
def test_backbone_arguments_that_disagree(tiny_data, tmp_path, options, expected):
    with pytest.raises(ValueError, match=expected):
        build_runner(tiny_config(tiny_data, tmp_path, **options))
