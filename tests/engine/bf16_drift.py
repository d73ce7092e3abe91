"""How far bf16 training drifts from float32, and how far float32 drifts from itself.

One process trains a config's detector for N iterations on the same pre-loaded batches, with the
same initial weights and the same random numbers per iteration (RPN and RoI sampling), once per
variant, and prints each variant's loss against float32's::

    python -m tests.engine.bf16_drift [--data-root DIR] [--config CONFIG] [--iters 20]
        [--variants fp32 bf16 ...]

Variants: ``fp32``; ``bf16`` (``BF16OptimWrapper`` and ``float32_outputs``, as the sharded configs
train); ``bf16+fp32:GROUP`` (bf16, with the modules of GROUP run in float32, autocast off: see
``GROUPS``); and float32's own sensitivity: ``fp32-bf16init`` (the initial weights rounded to
bf16), ``fp32-reseed`` (other random numbers for the RoI samplers), ``fp32-order`` (the same
batches in another order).
"""

import argparse
import functools
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from mmdet_dinov2.engine.precision import BF16OptimWrapper, float32_outputs  # noqa: F401 (registry)
from tests.helpers import TINY_CONFIG
from tests.tools.conftest import write_tiny_coco

# module groups that a variant keeps in float32: a predicate on (name, module)
GROUPS = {
    'deform': lambda name, m: type(m).__name__ == 'MSDeformAttn',
    'norms': lambda name, m: isinstance(
        m, (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.batchnorm._BatchNorm)
    ),
    'heads': lambda name, m: name in ('rpn_head', 'roi_head'),
    'neck': lambda name, m: name == 'neck',
    'backbone': lambda name, m: name == 'backbone',
    'vit': lambda name, m: name.startswith('backbone.blocks.') and name.count('.') == 2,
    'adapter': lambda name, m: name in ('backbone.spm', 'backbone.interactions'),
}


def _to_float32(value):
    if torch.is_tensor(value) and value.dtype in (torch.bfloat16, torch.float16):
        return value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(map(_to_float32, value))
    return value


def keep_float32(model, predicate):
    """Run the modules of ``model`` that ``predicate(name, module)`` picks (not inside another
    picked one) with autocast off and float32 inputs; returns their names."""
    picked = []
    for name, module in model.named_modules():
        if predicate(name, module) and not any(name.startswith(p + '.') for p in picked):
            picked.append(name)
            forward = module.forward

            @functools.wraps(forward)
            def float32_forward(*args, _forward=forward, **kwargs):
                with torch.autocast('cpu', enabled=False):
                    return _forward(
                        *_to_float32(args), **{k: _to_float32(v) for k, v in kwargs.items()}
                    )

            module.forward = float32_forward
    return picked


def load_config(config, data_root, batch_size=None):
    """``config`` training on ``data_root`` (``annotations/instances_train.json``, ``train/``)."""
    init_default_scope('mmdet')
    cfg = Config.fromfile(config)
    cfg.train_dataloader.dataset.data_root = str(data_root).rstrip('/') + '/'
    if batch_size:
        cfg.train_dataloader.batch_size = batch_size
    return cfg


def load_batches(cfg, iters, seed=0):
    """``iters`` training batches of ``cfg``'s loader, drawn once (random flips included)."""
    from mmengine.runner import Runner

    torch.manual_seed(seed)
    np.random.seed(seed)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=seed)
    batches = []
    while len(batches) < iters:
        batches += list(loader)
    return batches[:iters]


def train(cfg, batches, variant, seed=0):
    """The loss of each iteration of one variant (see the module)."""
    from mmdet.registry import MODELS
    from mmengine.registry import PARAM_SCHEDULERS

    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if variant == 'fp32-bf16init':
        with torch.no_grad():
            for param in model.parameters():
                param.copy_(param.bfloat16().float())
    bf16 = variant.startswith('bf16')
    if bf16:
        float32_outputs(model)
        for group in variant.split('+fp32:')[1:]:
            for part in group.split(','):
                keep_float32(model, GROUPS[part])
    wrapper_cfg = cfg.optim_wrapper.copy()
    wrapper_cfg['type'] = 'BF16OptimWrapper' if bf16 else 'OptimWrapper'
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    schedulers = [
        PARAM_SCHEDULERS.build(dict(s, optimizer=wrapper))
        for s in cfg.param_scheduler
        if not s.get('by_epoch', True)
    ]  # per-epoch ones barely move in 20 iterations
    order = list(range(len(batches)))
    if variant == 'fp32-order':
        order = order[1::2] + order[0::2]
    step_seed = 1000 if variant == 'fp32-reseed' else 0
    losses = []
    model.train()
    for i in order:
        torch.manual_seed(step_seed + len(losses))  # the same RPN and RoI samples per iteration
        log = model.train_step(batches[i], wrapper)
        losses.append(float(log['loss']))
        for scheduler in schedulers:
            scheduler.step()
    return losses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=TINY_CONFIG)
    parser.add_argument(
        '--data-root', help="default: the tests' 8 generated images, in a temporary folder"
    )
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--batch-size', type=int, help="default: the config's")
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--variants', nargs='+', default=['fp32', 'bf16'])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data_root = args.data_root or write_tiny_coco(Path(tempfile.mkdtemp()))
    cfg = load_config(args.config, data_root, args.batch_size)
    batches = load_batches(cfg, args.iters)
    results = {}
    if 'fp32' not in args.variants:
        args.variants.insert(0, 'fp32')
    for variant in args.variants:
        results[variant] = train(cfg, batches, variant)
        print(f'{variant}: ' + ' '.join(f'{v:.4f}' for v in results[variant]), flush=True)
    reference = results['fp32']
    print(
        f'\nvariant | loss it 1 | loss it {args.iters} | vs fp32 it 1 | vs fp32 it {args.iters} '
        f'| vs fp32, mean of the {args.iters}'
    )
    for variant, losses in results.items():
        rel = [(a - b) / b for a, b in zip(losses, reference)]
        mean = np.mean(losses) / np.mean(reference) - 1
        print(
            f'{variant} | {losses[0]:.4f} | {losses[-1]:.4f} | {100 * rel[0]:+.2f} % | '
            f'{100 * rel[-1]:+.2f} % | {100 * mean:+.2f} %'
        )
        assert all(map(math.isfinite, losses)), variant


if __name__ == '__main__':
    main()
