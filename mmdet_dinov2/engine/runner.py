"""mmengine's Runner, with ``load_from`` read by the project's safe checkpoint loader.

mmengine loads ``load_from`` with ``strict=False`` through a loader that falls back to
``torch.load(weights_only=False)``: a file from the internet could run code, and a checkpoint of
another model loads silently with half its keys. Here ``load_from`` (tools/train.py ``--cfg-options
load_from=...``, tools/test.py CHECKPOINT) goes through
:func:`mmdet_dinov2.checkpoints.load_state_dict_file` and every missing or unexpected key is logged.

Resuming (``--resume``) still goes through mmengine's own ``Runner.resume``: it needs the whole
training state (optimizer, schedulers, message hub), not only the weights. That is the seam where
a safe full-checkpoint reader plugs in.

Checkpoints of the original ViT-Adapter (mmdet 2.x Mask R-CNN) load unchanged: the backbone keeps
the original's parameter names, and mmdet 3.x's FPN, RPN head, Shared2FCBBoxHead and FCNMaskHead
name their parameters as mmdet 2.x did (mmdet 3.x loads its 2.x model-zoo checkpoints as they are).
"""
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import load_state_dict

from mmdet.registry import RUNNERS

from ..checkpoints import load_state_dict_file


def load_detector_weights(model, state_dict, logger=None):
    """Load a detector's state dict into ``model`` and report key mismatches.

    Args:
        model (nn.Module): the detector (not wrapped).
        state_dict (dict[str, Tensor]): e.g. from :func:`load_state_dict_file`.
        logger (logging.Logger, optional): where mismatches are reported.

    Returns:
        tuple[list[str], list[str]]: the model's keys the state dict lacks, and the state dict's
        keys the model lacks. Tensors whose shapes differ are skipped and reported by mmengine's
        loader.
    """
    model_keys = set(model.state_dict())
    missing = sorted(model_keys - set(state_dict))
    unexpected = sorted(set(state_dict) - model_keys)
    load_state_dict(model, state_dict, strict=False, logger=logger)
    if logger is not None:
        logger.info(f'Loaded {len(state_dict) - len(unexpected)} of the model\'s {len(model_keys)} '
                    f'tensors ({len(missing)} missing, {len(unexpected)} unexpected)')
    return missing, unexpected


@RUNNERS.register_module()
class SafeLoadRunner(Runner):
    """A :class:`mmengine.runner.Runner` that reads ``load_from`` with the safe loader.

    The top-level config key ``trust_checkpoint = True`` lifts the weights-only restriction for
    a file you trust. Arguments are those of mmengine's Runner.
    """

    def load_or_resume(self):
        if self._has_loaded or self._resume or self._load_from is None:
            return super().load_or_resume()
        trust = bool(self.cfg.get('trust_checkpoint', False))
        checkpoint = dict(state_dict=load_state_dict_file(self._load_from, trust=trust))
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)  # as mmengine does
        model = self.model.module if is_model_wrapper(self.model) else self.model
        load_detector_weights(model, checkpoint['state_dict'], logger=self.logger)
        self.logger.info(f'Load checkpoint from {self._load_from}')
        self._has_loaded = True
