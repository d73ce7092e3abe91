"""Memory per GPU of a detector under DDP and under sharding (FSDP2Strategy), from the config alone.

Each config's detector is built on the meta device (no memory, no weights). Per GPU:

- DDP: every GPU holds all weights (fp32, 4 B a parameter), the gradients (4 B a trainable one)
  and AdamW's two moments (8 B a trainable one).
- sharded over N GPUs: those bytes / N, plus what is gathered whole while it runs: two units
  (this one and the prefetched next) in the gather dtype (2 B in bf16) and one unit's gradients
  before their reduce-scatter (4 B), the largest unit counted (a ViT block or an interaction
  block); and the root (embeddings, spatial prior, neck, heads), gathered for the whole step in
  fp32 with its gradients (8 B a parameter).
- activations: what autograd keeps for the backward pass of the backbone for one image of
  --size x --size, measured on the meta device (saved-tensor hooks, fp32, storages counted once),
  with and without ``with_cp``; bf16 autocast keeps them at about half (estimate: x 0.5). The
  RPN/RoI heads' activations (proposal-sized, the same for every backbone) are not counted.

    python tools/analysis_tools/memory_plan.py            # S/B/L/g, DINOv3 L and 7B, 1-64 GPUs
    python tools/analysis_tools/memory_plan.py --gpus 8 --batch 2 --size 1024 --out plan.md

Prints markdown tables: the arithmetic per config, then GiB per GPU for each GPU count.

``--measure CONFIG`` checks a plan instead: a few training steps of CONFIG (its strategy, optimizer
wrapper and ``with_cp``) sharded in a process group of one, random weights, synthetic images of
--size with two boxes and masks; prints s/iter and the peak memory (CUDA) as one table row::

    python tools/analysis_tools/memory_plan.py --batch 1 \\
        --measure configs/vit_adapter/mask-rcnn_dinov3-adapter-l_fpn_3x_coco_fsdp.py
"""
import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mmdet_dinov2.engine.sharding import shard_units  # noqa: E402

CONFIGS = {
    'DINOv2 S': 'mask-rcnn_dinov2-adapter-s_fpn_3x_coco.py',
    'DINOv2 B': 'mask-rcnn_dinov2-adapter-b_fpn_3x_coco.py',
    'DINOv2 L': 'mask-rcnn_dinov2-adapter-l_fpn_3x_coco.py',
    'DINOv2 g': 'mask-rcnn_dinov2-adapter-g_fpn_3x_coco.py',
    'DINOv3 L': 'mask-rcnn_dinov3-adapter-l_fpn_3x_coco.py',
    # the frozen-adapter 7B config with its ViT trained: the size a trainable 7B adapter has
    'DINOv3 7B (ViT trained)': 'mask-rcnn_dinov3-frozen-adapter-7b_fpn_3x_coco.py',
}
SHARD_LISTS = ('backbone.blocks', 'backbone.interactions')  # FSDP2Strategy's default
GIB = 2 ** 30


def build(config):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmdet_dinov2  # noqa: F401  (registers the backbones)
    init_default_scope('mmdet')
    cfg = Config.fromfile(str(ROOT / 'configs' / 'vit_adapter' / config))
    cfg.model.backbone.pretrained = None
    with torch.device('meta'):
        return cfg, MODELS.build(cfg.model)


def counts(model, all_trainable):
    """Parameters: all, trainable, of the largest unit, of the root (outside every unit)."""
    units = shard_units(model, SHARD_LISTS)
    modules = dict(model.named_modules())
    per_unit = [sum(p.numel() for p in modules[u].parameters()) for u in units]
    total = sum(p.numel() for p in model.parameters())
    trainable = total if all_trainable else sum(
        p.numel() for p in model.parameters() if p.requires_grad)
    return dict(total=total, trainable=trainable, unit=max(per_unit), units=len(units),
                root=total - sum(per_unit))


def activation_bytes(cfg, size, with_cp):
    """Bytes autograd saves for the backbone's backward, one fp32 image of size x size (meta)."""
    from mmdet.registry import MODELS
    backbone = dict(cfg.model.backbone, pretrained=None, with_cp=with_cp)
    with torch.device('meta'):
        model = MODELS.build(backbone).train()
    for p in model.parameters():
        p.requires_grad_(True)  # a trained ViT keeps its activations too
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage._cdata] = storage.nbytes()  # a storage shared by views, counted once
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.empty(1, 3, size, size, device='meta'))
    return sum(storages.values())


def states(c, gpus):
    """(DDP bytes, sharded bytes) of weights, gradients and AdamW state per GPU."""
    ddp = 4 * c['total'] + 4 * c['trainable'] + 8 * c['trainable']
    gathered = 2 * 2 * c['unit'] + 4 * c['unit'] + 8 * c['root']
    return ddp, ddp / gpus + gathered


def synthetic_batch(side, images):
    """``images`` random images of side x side, each with two boxes and their masks."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    boxes = torch.tensor([[0.1, 0.15, 0.45, 0.55], [0.5, 0.3, 0.9, 0.8]]) * side
    masks = torch.zeros(2, side, side, dtype=torch.uint8)
    for i, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
        masks[i, y0:y1, x0:x1] = 1
    samples = []
    for _ in range(images):
        sample = DetDataSample(metainfo=dict(img_shape=(side, side), ori_shape=(side, side),
                                             pad_shape=(side, side), scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([0, 1]),
                                           masks=BitmapMasks(masks.numpy(), side, side))
        samples.append(sample)
    inputs = [torch.randint(0, 255, (3, side, side), dtype=torch.uint8) for _ in range(images)]
    return dict(inputs=inputs, data_samples=samples)


def measure(config, side, images, iters):
    """s/iter and peak CUDA memory of ``iters`` sharded training steps (after one warm-up)."""
    import tempfile

    import torch.distributed as dist
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    import mmdet_dinov2  # noqa: F401
    from mmdet_dinov2.engine.precision import float32_outputs
    from mmdet_dinov2.engine.sharding import FSDP2Strategy
    init_default_scope('mmdet')
    cfg = Config.fromfile(config)
    cfg.model.backbone.pretrained = None
    cfg.model.backbone.pop('init_cfg', None)
    os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
    os.environ.setdefault('MASTER_PORT', '29533')
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(0)
    dist.init_process_group('nccl' if cuda else 'gloo', rank=0, world_size=1)
    try:
        strategy_cfg = dict(cfg.get('strategy') or dict(type='FSDP2Strategy'))
        strategy_cfg.pop('type')
        strategy = FSDP2Strategy(**strategy_cfg, work_dir=tempfile.mkdtemp())
        model = strategy._wrap_model(MODELS.build(cfg.model))
        float32_outputs(model)
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        model.train()
        seconds = []
        for i in range(iters + 1):
            batch = synthetic_batch(side, images)
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            model.train_step(batch, wrapper)
            if cuda:
                torch.cuda.synchronize()
            if i:  # the first step is a warm-up
                seconds.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() / GIB if cuda else float('nan')
    finally:
        dist.destroy_process_group()
    name = Path(config).name
    return (f'| config | size | images | s/iter | peak GiB (CUDA) |\n| --- | --- | --- | --- | --- |\n'
            f'| {name} | {side} | {images} | {sorted(seconds)[len(seconds) // 2]:.2f} | {peak:.1f} |')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--configs', nargs='+', choices=sorted(CONFIGS), default=list(CONFIGS))
    parser.add_argument('--gpus', nargs='+', type=int, default=[1, 8, 16, 64])
    parser.add_argument('--size', type=int, default=1024, help='image side for the activations')
    parser.add_argument('--batch', type=int, default=2, help='images per GPU')
    parser.add_argument('--out', help='also write the tables to this file')
    parser.add_argument('--measure', metavar='CONFIG', help='measure CONFIG instead (see above)')
    parser.add_argument('--iters', type=int, default=3, help='--measure: timed steps')
    args = parser.parse_args(argv)
    if args.measure:
        text = measure(args.measure, args.size, args.batch, args.iters)
        print(text)
        if args.out:
            Path(args.out).write_text(text + '\n')
        return

    rows = []
    for name in args.configs:
        cfg, model = build(CONFIGS[name])
        c = counts(model, all_trainable='ViT trained' in name)
        act = {cp: activation_bytes(cfg, args.size, cp) for cp in (False, True)}
        rows.append((name, c, act))
    lines = ['| config | parameters | trainable | units | largest unit | root | '
             f'activations fp32, 1 image {args.size}px: no cp / cp |', '|' + ' --- |' * 7]
    for name, c, act in rows:
        lines.append(f'| {name} | {c["total"] / 1e6:,.1f} M | {c["trainable"] / 1e6:,.1f} M | '
                     f'{c["units"]} | {c["unit"] / 1e6:,.1f} M | {c["root"] / 1e6:,.1f} M | '
                     f'{act[False] / GIB:.2f} / {act[True] / GIB:.2f} GiB |')
    lines += ['', f'GiB per GPU, batch {args.batch} at {args.size}px. States: weights + gradients '
              '+ AdamW (DDP: 4 + 4 + 8 B a trainable parameter; sharded: that / GPUs + gathered '
              'units and root). Total: states + bf16 activations (fp32 x 0.5) x batch.', '',
              '| config | GPUs | DDP states | sharded states | act. bf16 no cp | act. bf16 cp | '
              'DDP total, cp | sharded total, cp |', '|' + ' --- |' * 8]
    for name, c, act in rows:
        act_cp, act_full = (args.batch * 0.5 * act[cp] for cp in (True, False))
        for gpus in args.gpus:
            ddp, sharded = states(c, gpus)
            lines.append(f'| {name} | {gpus} | {ddp / GIB:.1f} | {sharded / GIB:.1f} | '
                         f'{act_full / GIB:.1f} | {act_cp / GIB:.1f} | {(ddp + act_cp) / GIB:.1f} | '
                         f'{(sharded + act_cp) / GIB:.1f} |')
    text = '\n'.join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + '\n')


if __name__ == '__main__':
    main()
