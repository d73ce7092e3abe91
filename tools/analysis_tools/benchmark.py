"""Time and size the whole Mask R-CNN ViT-Adapter detector (train step and inference), CPU or CUDA.

For each config (S/B/L/g), precision (fp32, bf16 autocast) and activation checkpointing (with_cp off /
on): seconds per train iteration (forward + backward + AdamW step) at --size x --size with --batch
images, images/s, peak ``torch.cuda.max_memory_allocated`` (CUDA only), and inference images/s at
--infer-size. Also the ViT part alone (patch tokens through the blocks, forward + backward, same
precision): its achieved TFLOP/s and, with --peak-tflops, its share of the GPU's peak. FLOPs are
counted by ``torch.utils.flop_counter.FlopCounterMode`` on one ViT forward + backward (matmuls,
linears and scaled-dot-product attention; under with_cp the recomputed forward is not counted, so
the figure is useful work per second). Prints a markdown table (and writes it with --out).

    python tools/analysis_tools/benchmark.py                          # CUDA: S/B/L/g, fp32/bf16, cp off/on
    python tools/analysis_tools/benchmark.py --archs l --dtypes bf16 --with-cp on
    python tools/analysis_tools/benchmark.py --tiny --device cpu      # seconds: a check of the script

Weights are random (no checkpoint is read): speed and memory do not depend on them. Norms are plain BN
(one process; SyncBN is plain BN there too). A config that runs out of memory is reported as OOM.
"""
import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
# dense bf16 TFLOP/s (no sparsity), from the vendors' data sheets, by a word in the device name
PEAK_BF16_TFLOPS = {'H200': 989.0, 'H100': 989.0, 'A100': 312.0, 'L40S': 362.0, 'A6000': 155.0,
                    'L4': 121.0, '4090': 165.0}
# a tiny model for --tiny: the S config with 2 blocks, 2 interactions, narrow
TINY = dict(embed_dim=96, depth=2, num_heads=2, deform_num_heads=2, conv_inplane=16,
            interaction_indexes=[[0, 0], [1, 1]], window_attn=[True, False], window_size=[14, None],
            img_size=224, pretrain_size=224)


def plain_bn(cfg):
    """A copy of a config dict with every SyncBN made BN (one process, CPU or GPU)."""
    from mmdet_dinov2.engine.launch import replace_sync_bn
    cfg = copy.deepcopy(cfg)
    replace_sync_bn(cfg)
    return cfg


def build_detector(arch: str, with_cp: bool, tiny: bool, device: torch.device):
    from mmengine.config import Config, ConfigDict

    import mmdet_dinov2  # noqa: F401  (registers ViTAdapter)
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(str(ROOT / f'configs/vit_adapter/mask-rcnn_dinov2-adapter-{arch}_fpn_3x_coco.py'))
    model_cfg = ConfigDict(plain_bn(cfg.model.to_dict()))
    model_cfg.backbone.update(pretrained=None, with_cp=with_cp, **(TINY if tiny else {}))
    if tiny:
        model_cfg.neck.in_channels = [TINY['embed_dim']] * 4
    torch.manual_seed(0)
    return MODELS.build(model_cfg).to(device)


def fake_batch(batch: int, height: int, width: int, with_gt: bool):
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(0)
    return demo_mm_inputs(batch_size=batch, image_shapes=(3, height, width), num_items=[5] * batch,
                          num_classes=80, with_mask=with_gt)


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn, device, warmup: int, iters: int) -> float:
    """Median seconds of fn() over iters runs after warmup runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def autocast(device, dtype):
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def train_step_fn(model, optimizer, packed, device, dtype):
    def step():
        data = model.data_preprocessor(packed, training=True)
        with autocast(device, dtype):
            losses = model(**data, mode='loss')
        total = sum(sum(v) if isinstance(v, (list, tuple)) else v for k, v in losses.items() if 'loss' in k)
        total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def infer_fn(model, packed, device, dtype):
    def run():
        data = model.data_preprocessor(packed, training=False)
        with torch.no_grad(), autocast(device, dtype):
            model(**data, mode='predict')
    return run


def vit_fn(backbone, batch, size, device, dtype):
    """The ViT blocks alone on (batch, (size/16)^2, C) patch tokens, forward + backward."""
    hw = (size // 16, size // 16)
    x = torch.randn(batch, hw[0] * hw[1], backbone.embed_dim, device=device, requires_grad=True)

    def run():
        with autocast(device, dtype):
            y = x
            for block in backbone.blocks:
                y = block(y, hw)
        y.float().sum().backward()
    return run


def vit_flops(run) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def measure(arch, dtype_name, with_cp, args, device):
    dtype = {'fp32': None, 'bf16': torch.bfloat16}[dtype_name]
    row = dict(arch=arch.upper() if arch != 'g' else 'g', dtype=dtype_name, with_cp=with_cp, batch=args.batch)
    model = optimizer = None
    try:
        if device.type == 'cuda':
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        model = build_detector(arch, with_cp, args.tiny, device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        packed = fake_batch(args.batch, args.size, args.size, with_gt=True)
        row['train_s'] = timed(train_step_fn(model, optimizer, packed, device, dtype), device,
                               args.warmup, args.iters)
        row['train_img_s'] = args.batch / row['train_s']
        if device.type == 'cuda':
            row['peak_gib'] = torch.cuda.max_memory_allocated(device) / 2 ** 30
        vit_run = vit_fn(model.backbone, args.batch, args.size, device, dtype)
        flops = vit_flops(vit_run)
        row['vit_s'] = timed(vit_run, device, 1, args.iters)
        row['vit_tflops'] = flops / row['vit_s'] / 1e12
        optimizer.zero_grad(set_to_none=True)
        optimizer = None
        model.eval()
        w, h = args.infer_size
        packed = fake_batch(args.batch, h, w, with_gt=False)
        row['infer_img_s'] = args.batch / timed(infer_fn(model, packed, device, dtype), device,
                                                args.warmup, args.iters)
    except torch.cuda.OutOfMemoryError:
        row['error'] = 'OOM'
    except Exception as e:  # reported in the table (and the exit status); the next config still runs
        row['error'] = f'{type(e).__name__}: {str(e).splitlines()[0][:120]}'
    finally:
        del model, optimizer
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return row


# What a short GPU session needs first: the targets (L bf16 + with_cp in 24 GB, g at batch 2
# in 80 GB, the ViT's share of peak), then the rest. --budget-s cuts from the end of this order.
FIRST = [('s', 'fp32', 'off'), ('s', 'bf16', 'off'), ('l', 'bf16', 'on'), ('l', 'bf16', 'off'),
         ('g', 'bf16', 'on'), ('b', 'bf16', 'off'), ('b', 'fp32', 'off'), ('l', 'fp32', 'on')]


def plan(args):
    """(arch, batch, dtype, with_cp) in the order they run: FIRST's, then the rest."""
    combos = [(arch, batch, dtype, cp) for arch in args.archs
              for batch in (args.g_batches if arch == 'g' else [args.batch])
              for dtype in args.dtypes for cp in args.with_cp]
    rank = {key: i for i, key in enumerate(FIRST)}
    # g's larger batch first within its entry: that is the 80 GB question
    return sorted(combos, key=lambda c: (rank.get((c[0], c[2], c[3]), len(FIRST)), -c[1] if c[0] == 'g' else 0))


def markdown(rows, peak_tflops, device_name):
    head = ['config', 'precision', 'with_cp', 'batch', 's/iter (train)', 'images/s (train)',
            'peak memory (GiB)', 'inference images/s', 'ViT TFLOP/s']
    if peak_tflops:
        head.append(f'ViT share of {peak_tflops:g} TFLOP/s')
    lines = [f'Device: {device_name}', '', '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        cells = [r['arch'], r['dtype'], 'on' if r['with_cp'] else 'off', str(r['batch'])]
        if 'error' in r and 'train_s' not in r:
            cells += [r['error']] + ['-'] * (len(head) - len(cells) - 1)
        else:
            def fmt(key, spec):
                return format(r[key], spec) if key in r else r.get('error', '-')
            cells += [fmt('train_s', '.3f'), fmt('train_img_s', '.2f'), fmt('peak_gib', '.1f'),
                      fmt('infer_img_s', '.2f'), fmt('vit_tflops', '.3g')]
            if peak_tflops:
                cells.append(f"{100 * r['vit_tflops'] / peak_tflops:.0f}%" if 'vit_tflops' in r else '-')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def parse_size(text):
    w, _, h = text.partition('x')
    return int(w), int(h or w)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--archs', nargs='+', default=['s', 'b', 'l', 'g'], choices=['s', 'b', 'l', 'g'])
    parser.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'], choices=['fp32', 'bf16'])
    parser.add_argument('--with-cp', nargs='+', default=['off', 'on'], choices=['off', 'on'])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--g-batches', type=int, nargs='+', default=[1, 2],
                        help='batch sizes for g (default 1 and 2)')
    parser.add_argument('--size', type=int, default=1024, help='square train input (pixels)')
    parser.add_argument('--infer-size', type=parse_size, default=(1333, 800), metavar='WxH',
                        help='inference input, width x height (default 1333x800)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--tiny', action='store_true',
                        help='a tiny backbone at 128 px, 1 iteration: checks the script in seconds')
    parser.add_argument('--peak-tflops', type=float, default=None,
                        help='the device\'s dense bf16 peak (default: looked up by its name on CUDA)')
    parser.add_argument('--budget-s', type=float, default=None,
                        help='start no new config after this many seconds (the rest: "not run")')
    parser.add_argument('--out', help='also write the markdown table to this file')
    args = parser.parse_args(argv)
    if args.tiny:
        args.size, args.infer_size, args.warmup, args.iters, args.batch = 128, (192, 128), 0, 1, 1
        args.g_batches = [1]
    device = torch.device(args.device)
    if device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
        if args.peak_tflops is None:
            args.peak_tflops = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    else:
        name = f'CPU ({torch.get_num_threads()} threads)'
    device_name = f'{name}, torch {torch.__version__}' + (', tiny model' if args.tiny else '')
    rows = []
    t0 = time.perf_counter()
    for arch, batch, dtype, cp in plan(args):
        if args.budget_s and time.perf_counter() - t0 > args.budget_s:
            rows.append(dict(arch=arch.upper() if arch != 'g' else 'g', dtype=dtype, with_cp=cp == 'on',
                             batch=batch, error=f'not run (--budget-s {args.budget_s:g})'))
            continue
        sub = argparse.Namespace(**{**vars(args), 'batch': batch})
        t = time.perf_counter()
        row = measure(arch, dtype, cp == 'on', sub, device)
        print(f'  {arch} batch {batch} {dtype} with_cp={cp}: '
              + ', '.join(f'{k}={v:.3g}' if isinstance(v, float) else f'{k}={v}'
                          for k, v in row.items() if k not in ('arch', 'dtype', 'with_cp', 'batch'))
              + f' ({time.perf_counter() - t:.0f} s)', file=sys.stderr, flush=True)
        rows.append(row)
    table = markdown(rows, args.peak_tflops, device_name)
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    failed = [r for r in rows if r.get('error') and r['error'] != 'OOM' and not r['error'].startswith('not run')]
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
