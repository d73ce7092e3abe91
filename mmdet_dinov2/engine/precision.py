"""bf16 training and inference: ``optim_wrapper = dict(type='BF16OptimWrapper')`` (training under
autocast in bfloat16, on the CPU or CUDA) and ``default_hooks = dict(bf16=dict(type='BF16Hook'))``
(validation and testing under the same autocast, float32 at mmcv's ops).

Under ``torch.autocast`` convolutions and linears
return bfloat16, but mmcv's NMS and RoIAlign are plain extension calls that autocast does not see:
they stop with "expected scalar type Float but found BFloat16" (CPU; the CUDA kernels have no
bfloat16 either). The modules that feed them (the neck for RoIAlign, the RPN and box heads for NMS)
hand float32 on instead, through torch forward hooks: everything else still runs in bfloat16. The
deformable attention casts its own inputs (``models/layers/ms_deform_attn.py``).
"""
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
    float32 where they would return bfloat16 or float16; returns the hook handles.

    Raises:
        ValueError: a name that is no module of ``model``, listing its top-level modules.
    """
    modules = dict(model.named_modules())
    handles = []
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
    """Registers :func:`float32_outputs` on the runner's model, and runs each validation and test
    iteration under :func:`bf16_autocast` (training iterations run under ``BF16OptimWrapper``'s).
    mmengine's loops switch autocast off around the model unless ``val_cfg`` and ``test_cfg`` set
    ``fp16=True``; their autocast then takes this one's dtype, bfloat16.

    Args:
        modules (sequence[str]): the modules whose outputs reach mmcv's NMS or RoIAlign.
    """

    priority = 'VERY_HIGH'

    def __init__(self, modules=FEEDERS):
        self.modules = tuple(modules)
        self._handles = None
        self._autocast = ExitStack()

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
    """mmengine's :class:`OptimWrapper` (same arguments) with the forward and loss under
    ``torch.autocast`` in bfloat16, on the CPU too (mmengine's ``AmpOptimWrapper`` needs CUDA).
    bfloat16 has float32's exponent range, so no loss scaling; weights, gradients and optimizer
    state stay float32."""

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), bf16_autocast():
            yield
