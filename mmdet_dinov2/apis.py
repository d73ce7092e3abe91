"""Inference entry points that check detector weights as tools/test.py does
(:func:`~mmdet_dinov2.engine.runner.load_detector_weights`: NaN/inf, tensors of another shape or
kind, missing or extra tensors; ``partial_load`` loads what fits): mmdet's DetInferencer and
init_detector load with mmengine's ``strict=False``, which only warns."""
import copy

from mmdet.apis import DetInferencer as MMDetInferencer
from mmengine.config import Config
from mmengine.logging import MMLogger

from .engine.runner import config_flag, detector_state_dict, load_detector_weights


class DetInferencer(MMDetInferencer):
    """mmdet's DetInferencer (same arguments), its weights checked before loading.

    Args:
        partial_load (bool, optional): load what fits and log the rest; None: the config's
            ``partial_load`` (default False).
    """

    def __init__(self, *args, partial_load=None, **kwargs):
        self._partial_load = partial_load
        super().__init__(*args, **kwargs)

    def _init_model(self, cfg, weights, device='cpu'):
        self._weights = weights  # the name errors give the checkpoint
        return super()._init_model(cfg, weights, device)

    def _load_weights_to_model(self, model, checkpoint, cfg):
        if checkpoint is not None:
            given = cfg if self._partial_load is None else {'partial_load': self._partial_load}
            partial = config_flag(given, 'partial_load')
            load_detector_weights(model, detector_state_dict(checkpoint), source=str(self._weights),
                                  partial=partial, logger=MMLogger.get_current_instance())
            # mmdet then reads the classes and palette; the weights it loads are the model's own
            checkpoint = {**checkpoint, 'state_dict': model.state_dict()}
        super()._load_weights_to_model(model, checkpoint, cfg)


def init_detector(config, checkpoint=None, palette='none', device=None, cfg_options=None,
                  partial_load=None):
    """mmdet's ``init_detector`` with the checks of :class:`DetInferencer`.

    Args:
        config (str | Path | Config): the config (file).
        checkpoint (str, optional): a checkpoint file or URL.
        cfg_options (dict, optional): dotted keys merged into the config.
        partial_load (bool, optional): as :class:`DetInferencer`'s.

    Returns:
        nn.Module: the detector in eval mode on ``device`` (default: cuda if available).
    """
    config = copy.deepcopy(config) if isinstance(config, Config) else Config.fromfile(config)
    if cfg_options:
        config.merge_from_dict(cfg_options)
    return DetInferencer(config, checkpoint, device=device, palette=palette,
                         partial_load=partial_load).model
