"""bf16 training (``BF16OptimWrapper``) and inference (``BF16Hook``), float32 at mmcv's NMS and
RoIAlign, which have no bfloat16 kernels (docs/sharding.md, "bf16")."""
from contextlib import ExitStack, contextmanager

import torch
from mmdet.registry import HOOKS, OPTIM_WRAPPERS
from mmengine.device import get_device
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper

# Mask R-CNN and Cascade R-CNN: the neck feeds RoIAlign, the heads' scores and boxes feed NMS
FEEDERS = ('neck', 'rpn_head', 'roi_head.bbox_head', 'roi_head.mask_head')


def _to_float32(output):
    if torch.is_tensor(output):
        return output.float() if output.dtype in (torch.bfloat16, torch.float16) else output
    if isinstance(output, (list, tuple)):
        return type(output)(map(_to_float32, output))
    if isinstance(output, dict):
        return {key: _to_float32(value) for key, value in output.items()}
    return output


def float32_outputs(model, names=FEEDERS):
    """Make the modules ``names`` of ``model`` (a module list: each of its modules) return
    float32 where they would return bfloat16 or float16; return the hook handles. A name that is no
    module of ``model`` is a ValueError listing its top-level modules."""
    modules, handles = dict(model.named_modules()), []
    for name in names:
        if name not in modules:
            raise ValueError(f'BF16Hook: the model has no module {name!r} (its modules: '
                             f'{sorted(n for n in modules if n and "." not in n)}); set modules= '
                             'to those whose outputs reach NMS or RoIAlign')
        module = modules[name]
        for part in module if isinstance(module, torch.nn.ModuleList) else [module]:
            handles.append(part.register_forward_hook(
                lambda mod, args, output: _to_float32(output)))
    return handles


def bf16_autocast():
    """``torch.autocast`` in bfloat16 on the device mmengine runs on (CPU or CUDA)."""
    return torch.autocast(get_device().split(':')[0], dtype=torch.bfloat16)


@HOOKS.register_module()
class BF16Hook(Hook):
    """``default_hooks = dict(bf16=dict(type='BF16Hook'))``: :func:`float32_outputs` on the model,
    validation and test iterations under :func:`bf16_autocast` (mmengine's loops switch autocast
    off unless ``val_cfg``/``test_cfg`` set ``fp16=True``; theirs then takes this dtype).

    Args:
        modules (sequence[str]): the modules whose outputs reach mmcv's NMS or RoIAlign.
    """

    priority = 'VERY_HIGH'

    def __init__(self, modules=FEEDERS):
        self.modules, self._handles, self._autocast = tuple(modules), None, ExitStack()

    def before_run(self, runner):
        if self._handles is None:
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            self._handles = float32_outputs(model, self.modules)

    def _enter(self, runner, batch_idx, data_batch=None):
        self._autocast.enter_context(bf16_autocast())

    def _leave(self, runner, batch_idx, data_batch=None, outputs=None):
        self._autocast.close()

    before_val_iter = before_test_iter = _enter
    after_val_iter = after_test_iter = _leave


@OPTIM_WRAPPERS.register_module()
class BF16OptimWrapper(OptimWrapper):
    """``optim_wrapper = dict(type='BF16OptimWrapper')``: forward and loss under bf16 autocast, on
    the CPU too (mmengine's ``AmpOptimWrapper`` needs CUDA); no loss scaling (bf16 has float32's
    range); weights, gradients and optimizer state stay float32."""

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), bf16_autocast():
            yield
