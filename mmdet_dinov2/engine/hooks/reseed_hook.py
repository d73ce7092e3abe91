"""Re-seed the random generators at every epoch and iteration, so a resumed run repeats exactly."""
import numpy as np
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.runner.utils import set_random_seed


@HOOKS.register_module()
class ReseedHook(Hook):
    """Seed python, numpy and torch from (run seed, epoch) before each epoch's first batch and from
    (run seed, iteration), so that a resumed run repeats an uninterrupted one exactly (mmengine
    seeds once; not with ``persistent_workers=True``, whose worker streams cannot be restored)."""

    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner):
        self._seed(runner, 0, runner.epoch)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._seed(runner, 1, runner.iter)

    @staticmethod
    def _seed(runner, kind, step):  # kind: 0 for epochs, 1 for iterations
        seed = int(np.random.SeedSequence([runner.seed, kind, step]).generate_state(1)[0])
        diff_rank_seed = (runner.cfg.get('randomness') or {}).get('diff_rank_seed', False)
        set_random_seed(seed % 2**31, diff_rank_seed=diff_rank_seed)
