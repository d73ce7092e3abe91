"""Re-seed the random generators at every epoch and iteration, so a resumed run repeats exactly."""
import numpy as np
from mmengine.hooks import Hook
from mmengine.runner.utils import set_random_seed
from mmdet.registry import HOOKS

__all__ = ['ReseedHook']

_EPOCH, _ITER = 0, 1


@HOOKS.register_module()
class ReseedHook(Hook):
    """Seed python, numpy and torch from (run seed, epoch) and (run seed, iteration).

    mmengine seeds its generators once, when the runner is built; a run resumed from a checkpoint
    starts from that seed again instead of from where the interrupted run stood, and the validation
    between two epochs draws numbers too, so data augmentation, RoI sampling and drop-path differ
    from an uninterrupted run. Seeding at ``before_train_epoch`` (before the data loader draws the
    first batch of the epoch) and at ``before_train_iter`` makes every iteration's random numbers a
    function of the run's seed and its position only: resuming from an epoch checkpoint reproduces
    the uninterrupted losses exactly (CPU; data loader workers are re-seeded each epoch by mmengine
    unless ``persistent_workers=True``, whose worker streams cannot be restored).
    """

    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner):
        self._seed(runner, _EPOCH, runner.epoch)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._seed(runner, _ITER, runner.iter)

    @staticmethod
    def _seed(runner, kind, step):
        seed = int(np.random.SeedSequence([runner.seed, kind, step]).generate_state(1)[0])
        diff_rank_seed = (runner.cfg.get('randomness') or {}).get('diff_rank_seed', False)
        set_random_seed(seed % 2**31, diff_rank_seed=diff_rank_seed)
