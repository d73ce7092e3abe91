"""--resume after the lr or the layer decay changed in the config: the log names the checkpoint's
and the config's values and says that the checkpoint's apply (mmengine restores the optimizer and
scheduler state as saved), which the optimizer then shows."""
import re

import pytest

from tests.helpers import tiny_config, train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('plain_config_text', 'one_thread')]
WARNING = re.compile(r'--resume: \S+ was trained with (.*), the config says (.*): the '
                     r"checkpoint's values apply")


def test_resume_names_a_changed_lr_and_layer_decay_and_applies_the_checkpoints(tiny_data,
                                                                                tmp_path):
    work = tmp_path / 'work'
    train(tiny_config(tiny_data, work, **{'train_cfg.max_epochs': 1}))
    # unchanged: nothing said
    _, log = train(tiny_config(tiny_data, work, resume=True, **{'train_cfg.max_epochs': 2}))
    assert not WARNING.search(log)
    runner, log = train(tiny_config(tiny_data, work, resume=True, **{
        'train_cfg.max_epochs': 3, 'optim_wrapper.optimizer.lr': 2e-3,
        'optim_wrapper.paramwise_cfg.layer_decay_rate': 0.9}))
    said = WARNING.search(log)
    assert said and said.groups() == ('lr=0.001, layer_decay_rate=0.7',
                                      'lr=0.002, layer_decay_rate=0.9')
    # the tiny config: num_layers=2; the heads (layer 3) train at the base lr, the embeddings
    # (layer 0) at lr * 0.7 ** 3: the checkpoint's values
    groups = runner.optim_wrapper.optimizer.param_groups
    initial = {group['layer_id']: group['initial_lr'] for group in groups}
    assert initial[3] == pytest.approx(1e-3) and initial[0] == pytest.approx(1e-3 * 0.7 ** 3)


def test_resume_names_only_what_changed(tiny_data, tmp_path):
    work = tmp_path / 'work'
    train(tiny_config(tiny_data, work, **{'train_cfg.max_epochs': 1}))
    _, log = train(tiny_config(tiny_data, work, resume=True, **{
        'train_cfg.max_epochs': 2, 'optim_wrapper.optimizer.lr': 5e-4}))
    assert WARNING.search(log).groups() == ('lr=0.001', 'lr=0.0005')
