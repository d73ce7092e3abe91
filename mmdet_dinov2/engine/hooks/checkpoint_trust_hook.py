"""Apply a config's ``trust_checkpoint`` key to every checkpoint the runner loads."""
from mmengine.hooks import Hook
from mmdet.registry import HOOKS

from ...utils.checkpoint_trust import checkpoints_trusted, set_checkpoint_trust

__all__ = ['CheckpointTrustHook']


@HOOKS.register_module()
class CheckpointTrustHook(Hook):
    """Turn checkpoint trust on for a run whose config says ``trust_checkpoint = True``.

    Checkpoint files are loaded safely (``weights_only=True`` and an allow-list of data types);
    a file that needs more is refused unless the user vouches for it. The runner calls
    ``before_run`` before it initialises weights (``pretrained=``, ``init_cfg``) and before
    ``load_from`` / ``resume``, so the key covers all of them. Trust already turned on for the
    process (``--trust-checkpoint``) stays on; the previous setting is restored after the run.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner):
        trusted = runner.cfg.get('trust_checkpoint', False)
        if not isinstance(trusted, bool):
            raise TypeError(f'config key trust_checkpoint must be True or False, got {trusted!r}')
        self._previous = set_checkpoint_trust(checkpoints_trusted() or trusted)
        if checkpoints_trusted():
            runner.logger.warning(
                'trust_checkpoint is on: checkpoints that need more than tensors and plain data '
                'are unpickled with weights_only=False, which can run code hidden in the file')

    def after_run(self, runner):
        set_checkpoint_trust(getattr(self, '_previous', False))
