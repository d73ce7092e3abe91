"""Time the ViTAdapter backbone (forward + backward, train mode) on this machine's CPU or GPU.

Every (implementation, input size) runs in a fresh subprocess, so its peak RSS is its own, and the
implementations alternate run by run, so load from other processes hits both alike. Prints a
markdown table by input size and instruction set (native, and AVX2 with AVX-512 turned off in every
library, what a CPU without AVX-512 runs): median seconds per forward+backward, whole-process
peak memory and what one step adds to the memory of the built model, with the CPU model in the
header.

    python tools/analysis_tools/benchmark_backbone.py --sizes 256 512 --runs 5 [--isa native avx2]
    # also time the original ViT-Adapter code, made importable from your clone of it by
    # make_reference_shim.py (`from origvit.vit_adapter import ViTAdapter` from that folder)
    python tools/analysis_tools/make_reference_shim.py /path/to/ViT-Adapter --out /tmp/orig_ref
    python tools/analysis_tools/benchmark_backbone.py --reference-dir /tmp/orig_ref

The backbone settings are those of configs/vit_adapter/mask-rcnn_dinov2-adapter-{s,b,l}_fpn_3x_coco.py
with plain BN norms (the original builds SyncBN, which runs as plain BN in one process).
"""
import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a user without AVX-512 gets, on a machine that has it: every library capped at AVX2.
# ATen and oneDNN report what they use (tests/tools/test_benchmark_backbone.py checks both); MKL
# offers no such report (on AMD CPUs it may never take its AVX-512 path anyway).
ISA_ENV = {'native': {},
           'avx2': {'ATEN_CPU_CAPABILITY': 'avx2', 'ONEDNN_MAX_CPU_ISA': 'AVX2',
                    'MKL_ENABLE_INSTRUCTIONS': 'AVX2'}}


# --live-memory: blocks from this size up are mmapped and unmapped on free (glibc's default threshold
# starts at 128 KiB but grows with the blocks freed, up to 32 MiB, after which freed memory stays in
# the heap: the RSS peak then depends on the order of allocations and varies by ~0.1 GiB run to run)
LIVE_MEMORY_MMAP_THRESHOLD = 128 * 1024

CONFIGS = {'S': 's', 'B': 'b', 'L': 'l'}
OURS_ONLY = ('type', 'pretrained', 'norm_cfg', 'out_indices', 'freeze_vit', 'ffn_type', 'init_cfg')


def backbone_settings(arch: str) -> dict:
    """The backbone dict of the project's DINOv2 config for `arch`, without type and weights."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(ROOT / 'configs' / 'vit_adapter' /
                              f'mask-rcnn_dinov2-adapter-{CONFIGS[arch]}_fpn_3x_coco.py'))
    from mmdet_dinov2.models.backbones.archs import expand_arch
    return {k: v for k, v in expand_arch(cfg.model.backbone.to_dict()).items() if k not in OURS_ONLY}


def build(impl: str, arch: str, reference_dir: str, reference_class: str):
    settings = backbone_settings(arch)
    if impl == 'ours':
        sys.path.insert(0, str(ROOT))
        from mmdet_dinov2.models.backbones import ViTAdapter
        return ViTAdapter(**settings, norm_cfg=dict(type='BN'))
    sys.path.insert(0, reference_dir)
    module, name = reference_class.split(':')
    return getattr(importlib.import_module(module), name)(**settings)


def rss_gib() -> float:
    """This process's resident memory now (Linux; 0 elsewhere)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 2 ** 20  # KiB
    except OSError:
        pass
    return 0.0


def worker(args) -> dict:
    """One configuration in this process: returns seconds per run and peak RSS."""
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build(args.impl, args.arch, args.reference_dir, args.reference_class).to(device).train()
    img = torch.randn(args.batch, 3, args.size, args.size, device=device)
    built_gib = rss_gib()  # libraries, model and input: the same for both implementations
    times = []
    for i in range(args.warmup + args.runs):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        outs = model(img)
        sum(o.float().mean() for o in outs).backward()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux
    return dict(times=times, peak_gib=peak_gib, step_gib=peak_gib - built_gib,
                threads=torch.get_num_threads(), aten_isa=torch.backends.cpu.get_cpu_capability())


def worker_env(isa: str, live_memory: bool = False) -> dict:
    """A worker's environment: the instruction-set caps of `isa`; with `live_memory`, glibc's malloc
    gives every freed block of 128 KiB or more back to the system (MALLOC_MMAP_THRESHOLD_), so the
    peak RSS follows the tensors alive at once instead of what the allocator kept of earlier frees."""
    env = dict(os.environ, PYTHONWARNINGS='ignore', **ISA_ENV[isa])
    if live_memory:
        env['MALLOC_MMAP_THRESHOLD_'] = str(LIVE_MEMORY_MMAP_THRESHOLD)
    return env


def run_worker(args, impl: str, size: int, isa: str = 'native') -> dict:
    cmd = [sys.executable, __file__, '--worker', '--impl', impl, '--size', str(size), '--arch', args.arch,
           '--runs', str(args.runs), '--warmup', str(args.warmup), '--batch', str(args.batch),
           '--device', args.device, '--threads', str(args.threads or 0),
           '--reference-dir', args.reference_dir or '', '--reference-class', args.reference_class]
    out = subprocess.run(cmd, capture_output=True, text=True, env=worker_env(isa, args.live_memory))
    if out.returncode:
        raise RuntimeError(f'{impl} at {size}x{size} ({isa}) failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', choices=sorted(CONFIGS), default='S')
    parser.add_argument('--sizes', type=int, nargs='+', default=[256, 512])
    parser.add_argument('--runs', type=int, default=3, help='timed runs per process')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=2, help='fresh processes per configuration')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    parser.add_argument('--isa', nargs='+', choices=sorted(ISA_ENV), default=['native', 'avx2'],
                        help='CPU instruction sets: native, and/or avx2 (AVX-512 off in ATen, '
                             'oneDNN and MKL); one table row each')
    parser.add_argument('--live-memory', action='store_true',
                        help='measure memory as the tensors alive at once (glibc returns every freed '
                             'block of 128 KiB or more); steps then run about 2x slower, so read only '
                             'the memory columns')
    parser.add_argument('--reference-dir', default=None, help='folder holding the original code + shim')
    parser.add_argument('--reference-class', default='origvit.vit_adapter:ViTAdapter')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--impl', default='ours', help=argparse.SUPPRESS)
    parser.add_argument('--size', type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.reference_dir = args.reference_dir or None
        print(json.dumps(worker(args)))
        return

    impls = ['ours'] + (['original'] if args.reference_dir else [])
    isas = args.isa if args.device == 'cpu' else ['native']
    results = {}
    for size in args.sizes:
        for isa in isas:
            for _ in range(args.repeats):
                for impl in impls:  # alternate, so that background load hits both alike
                    r = run_worker(args, impl, size, isa)
                    entry = results.setdefault((impl, size, isa), dict(
                        times=[], peak=[], step=[], threads=r['threads'], aten=r['aten_isa']))
                    entry['times'] += r['times']
                    entry['peak'].append(r['peak_gib'])
                    entry['step'].append(r['step_gib'])

    threads = results[('ours', args.sizes[0], isas[0])]['threads']
    sys.path.insert(0, str(ROOT))
    from mmdet_dinov2.utils.machine import cpu_model
    where = cpu_model() if args.device == 'cpu' else args.device
    memory = ('; --live-memory: memory of the tensors alive at once, times NOT comparable (every large '
              'block is mmapped)' if args.live_memory else '')
    print(f'\nViT-Adapter-{args.arch}, forward + backward, train mode, batch {args.batch}, {where}, '
          f'{threads} threads; median of {args.runs} runs x {args.repeats} processes{memory}\n')
    # peak: the whole process's peak RSS; step: what the forward + backward added to the RSS after
    # the model was built (activations, gradients, workspaces; without the libraries' ~1 GiB)
    header = '| input | ISA (ATen) | ours (s) | ours peak / step (GiB) |'
    if len(impls) > 1:
        header += (' original (s) | original peak / step (GiB) | time ours/original | peak ours/original |'
                   ' step ours/original |')
    print(header)
    print('|' + '---|' * (header.count('|') - 1))
    for size in args.sizes:
        for isa in isas:
            ours = results[('ours', size, isa)]
            t, m, st = statistics.median(ours['times']), max(ours['peak']), max(ours['step'])
            row = f'| {size}x{size} | {isa} ({ours["aten"]}) | {t:.2f} | {m:.2f} / {st:.2f} |'
            if len(impls) > 1:
                ref = results[('original', size, isa)]
                tr, mr, sr = statistics.median(ref['times']), max(ref['peak']), max(ref['step'])
                row += f' {tr:.2f} | {mr:.2f} / {sr:.2f} | {t / tr:.2f} | {m / mr:.2f} | {st / sr:.2f} |'
            print(row)


if __name__ == '__main__':
    main()
