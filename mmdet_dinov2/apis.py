"""Inference entry points that check detector weights as tools/test.py does
(:func:`~mmdet_dinov2.engine.runner.load_detector_weights`), where mmdet's only warn
(``strict=False``). A config read from a checkpoint is parsed as data, not executed."""
import ast
import copy

from mmdet.apis import DetInferencer as MMDetInferencer
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger

from .checkpoints import CheckpointError, checkpoints_trusted, load_checkpoint_file
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
        if not cfg and weights is not None and not checkpoints_trusted():
            # in place: the caller builds the pipeline from this object
            cfg.update(ConfigDict(config_in_checkpoint(load_checkpoint_file(weights), weights)))
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


def config_in_checkpoint(checkpoint, source):
    """The config that mmengine saved in ``checkpoint`` as Python text, read without running it:
    assignments of literals and ``dict(...)`` only; a CheckpointError naming ``source`` if there is
    none, or it is more than data."""
    text = (checkpoint.get('message_hub', {}).get('runtime_info', {}).get('cfg')
            or checkpoint.get('meta', {}).get('cfg'))
    if not isinstance(text, str):
        raise CheckpointError(f'{source} holds no config: give the config file as well')
    try:
        return {_name(node): _data(node.value) for node in ast.parse(text).body}
    except (SyntaxError, ValueError) as err:
        raise CheckpointError(
            f'{source}: the config it holds is more than data ({err}); running it could run '
            'code. Give the config file as well, or trust the checkpoint (--trust-checkpoint) '
            'if you trust the file') from None


def _name(node):
    if not (isinstance(node, ast.Assign) and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)):
        raise ValueError(f'line {node.lineno} is not an assignment of a value to a name')
    return node.targets[0].id


def _data(node):
    """A literal, or a list, tuple, dict or ``dict(key=...)`` of them, from its syntax tree."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict'
            and not node.args and all(keyword.arg for keyword in node.keywords)):
        return {keyword.arg: _data(keyword.value) for keyword in node.keywords}
    if isinstance(node, (ast.List, ast.Tuple)):
        values = [_data(value) for value in node.elts]
        return values if isinstance(node, ast.List) else tuple(values)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_data(key): _data(value) for key, value in zip(node.keys, node.values)}
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(f'line {node.lineno}: {ast.unparse(node)[:80]} is not a value') from None


def init_detector(config, checkpoint=None, palette='none', device=None, cfg_options=None,
                  partial_load=None):
    """mmdet's ``init_detector`` with the checks of :class:`DetInferencer`: the detector in eval
    mode on ``device`` (default: cuda if available).

    Args:
        config (str | Path | Config): the config (file).
        checkpoint (str, optional): a checkpoint file or URL.
        cfg_options (dict, optional): dotted keys merged into the config.
        partial_load (bool, optional): as :class:`DetInferencer`'s.
    """
    config = copy.deepcopy(config) if isinstance(config, Config) else Config.fromfile(config)
    if cfg_options:
        config.merge_from_dict(cfg_options)
    return DetInferencer(config, checkpoint, device=device, palette=palette,
                         partial_load=partial_load).model
