"""Images/s of a detector in PyTorch eager (mmdet's ``predict``, fp32) and of its ONNX file on ONNX
Runtime's CPU provider, in the same process, on the same input, alternating run by run.

    python tools/deployment/benchmark_onnx.py CONFIG [CHECKPOINT] --onnx FILE [--runs 3]
        [--isa native avx2] [--profile]

Each ISA runs in its own process (the caps must be set before torch loads): ``avx2`` sets
``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA`` and ``MKL_ENABLE_INSTRUCTIONS`` for torch. ONNX
Runtime has no such switch (MLAS picks its kernels by CPUID), so its figure is native in both rows.
Both use the same number of threads (torch's default) and both times include pasting the masks into
the image (mmdet's ``_do_paste_mask``; ``onnx_io.paste_masks``). ``--profile`` adds where each spends
its time, in seconds per image by operator: ONNX Runtime's own profiler averaged over its timed
runs (the warm-ups left out), and one more eager run under ``torch.profiler`` (each aten op's self time).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / 'analysis_tools')]
from benchmark_backbone import ISA_ENV  # noqa: E402

# Untimed rounds before the timed ones: ONNX Runtime's second run is its slowest (S at 800x1344: about
# twice the steady time, while its memory arena grows), so one round does not warm it up.
WARMUP = 2


def worker(args):
    """Time both on one random image; print a JSON line."""
    import numpy as np
    import onnxruntime as ort
    import torch

    import export_onnx

    detector = export_onnx.build_detector(args.config, args.checkpoint)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.enable_profiling = args.profile
    session = ort.InferenceSession(args.onnx, options, providers=['CPUExecutionProvider'])
    meta = json.loads(session.get_modelmeta().custom_metadata_map['input_shape'])
    image = np.random.default_rng(0).standard_normal((1, 3, *meta), dtype=np.float32)
    size = np.float32(meta)
    runs = dict(
        eager=lambda: export_onnx.torch_predictions(detector, image, size),
        onnx=lambda: export_onnx.onnx_predictions(session, image, size),
    )
    times = {name: [] for name in runs}
    for i in range(WARMUP + args.runs):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if i >= WARMUP:
                times[name].append(time.perf_counter() - start)
    result = dict(
        threads=torch.get_num_threads(),
        aten=torch.backends.cpu.get_cpu_capability(),
        seconds={k: sorted(v)[len(v) // 2] for k, v in times.items()},
    )
    if args.profile:
        result['onnx_ops'] = onnx_profile(session.end_profiling(), WARMUP)
        result['eager_ops'] = eager_profile(runs['eager'])
    print(json.dumps(result))


def _top(per_op, top=10):
    """The ``top`` largest entries of {op: seconds}, rounded, and the rest summed as 'other'."""
    ops = Counter(per_op).most_common()
    return {
        **{op: round(t, 3) for op, t in ops[:top]},
        'other': round(sum(t for _, t in ops[top:]), 3),
    }


def onnx_profile(path, skip):
    """ONNX Runtime's kernel time per operator type, seconds per run, from its profile file, leaving
    out the first ``skip`` runs."""
    events = json.loads(Path(path).read_text())
    Path(path).unlink()
    starts = sorted(e['ts'] for e in events if e.get('name') == 'model_run')
    per_op = Counter()
    for e in events:
        if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time') and e['ts'] >= starts[skip]:
            per_op[e['args']['op_name']] += e['dur'] / 1e6 / (len(starts) - skip)
    return _top(per_op)


def eager_profile(run):
    """One eager run's self CPU time per aten op, seconds (``torch.profiler``)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return _top({e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()})


def main(argv=None):
    parser = argparse.ArgumentParser(description='PyTorch eager vs ONNX Runtime images/s')
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?')
    parser.add_argument('--onnx', required=True, help='the file export_onnx.py wrote')
    parser.add_argument('--runs', type=int, default=3, help='timed runs of each (median)')
    parser.add_argument('--isa', nargs='+', choices=sorted(ISA_ENV), default=['native', 'avx2'])
    parser.add_argument('--profile', action='store_true', help="ONNX Runtime's time by operator")
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    print('| ISA (ATen) | threads | eager (img/s) | ONNX Runtime (img/s) | ORT / eager |')
    print('|---|---|---|---|---|')
    for isa in args.isa:
        cmd = [sys.executable, __file__, *(sys.argv[1:] if argv is None else argv), '--worker']
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONWARNINGS='ignore', **ISA_ENV[isa]),
        )
        if out.returncode:
            raise SystemExit(f'the {isa} worker failed:\n{out.stderr[-3000:]}')
        r = json.loads(out.stdout.strip().splitlines()[-1])
        eager, onnx = (1 / r['seconds'][k] for k in ('eager', 'onnx'))
        print(
            f'| {isa} ({r["aten"]}) | {r["threads"]} | {eager:.3f} | {onnx:.3f} | '
            f'{onnx / eager:.2f} |'
        )
        if 'onnx_ops' in r:
            print(f'ONNX Runtime, s per image by operator ({isa}): {r["onnx_ops"]}')
            print(f'eager, s per image by aten op ({isa}): {r["eager_ops"]}')


if __name__ == '__main__':
    main()
