#!/usr/bin/env bash
# One command for the GPU path on a GPU node: install (when needed, from the wheelhouse, offline),
# the CUDA tests (pytest tests/cuda -m cuda), the detector benchmark, a one-GPU sharded smoke test;
# writes gpu_report.md (versions, GPU, tests, benchmark, smoke) and exits non-zero on any failure.
#
# usage: tools/gpu/check.sh [--cpu] [--python PY] [--wheelhouse DIR] [--report FILE] [--logs DIR]
#                           [--budget-s SECONDS] [--no-tests] [--no-bench]
#   --cpu          dry run without CUDA: the same steps, CPU ops, tests skipped, a tiny benchmark
#   --python PY    interpreter (default python3; with --cpu, .venv/bin/python when there)
#   --wheelhouse   folder from tools/gpu/make_wheelhouse.sh (default wheelhouse/), used only when the
#                  stack is not installed yet
#   --report FILE  default gpu_report.md;  --logs DIR: the step logs (default gpu_logs/)
#   --budget-s S   whole run's time budget (default 540): the benchmark starts no new config after it
#                  and marks the rest "not run"
#   --no-tests, --no-bench   leave that step out (e.g. a second call on a warm node: more benchmark)
# env: BENCH_ARGS adds arguments to tools/analysis_tools/benchmark.py.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CPU=0
PY=""
WH=$ROOT/wheelhouse
REPORT=$ROOT/gpu_report.md
LOGS=$ROOT/gpu_logs
BUDGET=540
BENCH=1
TESTS=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --cpu) CPU=1; shift ;;
        --python) PY=$2; shift 2 ;;
        --wheelhouse) WH=$2; shift 2 ;;
        --report) REPORT=$2; shift 2 ;;
        --logs) LOGS=$2; shift 2 ;;
        --budget-s) BUDGET=$2; shift 2 ;;
        --no-bench) BENCH=0; shift ;;
        --no-tests) TESTS=0; shift ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "!! unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$BUDGET" =~ ^[0-9]+$ ]] || { echo "!! --budget-s takes whole seconds (got '$BUDGET')" >&2; exit 2; }
if [[ -z "$PY" ]]; then
    PY=python3
    [[ "$CPU" == 1 && -x "$ROOT/.venv/bin/python" ]] && PY=$ROOT/.venv/bin/python
fi
mkdir -p "$LOGS"
cd "$ROOT"
T0=$(date +%s)
FAILED=()
export PYTHONUNBUFFERED=1
quiet() { grep -v -E 'Could not import OneDL|No CUDA runtime is found'; }

if [[ "$CPU" == 0 ]] && ! "$PY" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
    echo "!! $PY's torch sees no CUDA device; for a dry run on a CPU machine use --cpu" >&2; exit 1
fi

echo "==> [check] 1/3 install (when needed)"
INSTALL="already installed"
INSTALL_S=0
probe='import mmcv.ops, mmdet, mmengine, mmdet_dinov2, torch'
[[ "$CPU" == 0 ]] && probe+='; from mmcv.ops import nms; nms(torch.rand(3, 4, device="cuda") * torch.tensor([1., 1., 0., 0.], device="cuda") + torch.tensor([0., 0., 10., 10.], device="cuda"), torch.rand(3, device="cuda"), 0.5)'
if "$PY" -c "$probe" >/dev/null 2>&1; then
    echo "    $INSTALL"
else
    t=$(date +%s)
    if "$HERE/install_offline.sh" "$WH" --python "$PY" $([[ "$CPU" == 1 ]] && echo --cpu) 2>&1 \
            | tee "$LOGS/install.log"; then
        INSTALL_S=$(($(date +%s) - t))
        INSTALL="installed from $WH in $INSTALL_S s"
    else
        INSTALL_S=$(($(date +%s) - t))
        INSTALL="FAILED (see $LOGS/install.log)"; FAILED+=(install)
    fi
fi

TESTS_S=0
rm -f "$LOGS/cuda-tests.xml"
if [[ "$TESTS" == 1 ]]; then
    echo "==> [check] 2/3 CUDA tests: pytest tests/cuda -m cuda"
    t=$(date +%s)
    "$PY" -m pytest tests/cuda -m cuda -q -rs -p no:cacheprovider --junitxml="$LOGS/cuda-tests.xml" 2>&1 \
        | quiet | tee "$LOGS/cuda-tests.log"
    rc=${PIPESTATUS[0]}
    TESTS_S=$(($(date +%s) - t))
    [[ "$rc" == 0 ]] || FAILED+=(tests)
fi

BENCH_MD=$LOGS/benchmark.md
: > "$BENCH_MD"
rm -f "$LOGS/sharded.md"
BENCH_S=0
if [[ "$BENCH" == 1 ]]; then
    t=$(date +%s)
    echo "==> [check] 3/3 benchmark"
    left=$((BUDGET - ($(date +%s) - T0) - 60))
    (( left < 30 )) && left=30
    if [[ "$CPU" == 1 ]]; then
        # mmcv's CPU ops take float32 only (bf16 autocast stops in its nms): fp32 here
        bench=(--tiny --device cpu --archs s --dtypes fp32)
    else
        bench=(--iters 3 --warmup 1 --budget-s "$left")
    fi
    # shellcheck disable=SC2086
    "$PY" tools/analysis_tools/benchmark.py "${bench[@]}" --out "$BENCH_MD" ${BENCH_ARGS:-} 2>&1 \
        | quiet | grep -v -E 'mmengine - INFO|Initialized by|^ *$|torch.Size|faster_coco_eval|warnings.warn' \
        | tee "$LOGS/benchmark.log"
    [[ "${PIPESTATUS[0]}" == 0 ]] || FAILED+=(benchmark)
    # one-GPU sharded smoke: FSDP2 in a process group of one, bf16, with_cp (docs/sharding.md)
    if [[ "$CPU" == 1 ]]; then
        smoke=(--measure configs/quickstart/mask-rcnn_vit-adapter-tiny_fpn_shapes.py --size 192 --iters 1)
    else
        smoke=(--measure configs/vit_adapter/mask-rcnn_dinov3-adapter-l_fpn_3x_coco_fsdp.py --size 1024)
    fi
    "$PY" tools/analysis_tools/memory_plan.py "${smoke[@]}" --batch 1 --out "$LOGS/sharded.md" 2>&1 \
        | quiet > "$LOGS/sharded.log"
    [[ "${PIPESTATUS[0]}" == 0 ]] || FAILED+=(sharded)
    BENCH_S=$(($(date +%s) - t))
fi

echo "==> [check] report: $REPORT"
"$PY" - "$REPORT" "$LOGS" "$INSTALL" "$TESTS_S" "$CPU" "${FAILED[*]:-}" "$(($(date +%s) - T0))" \
    "$INSTALL_S" "$BENCH_S" <<'PYEOF' 2>&1 | quiet
import datetime, platform, subprocess, sys, xml.etree.ElementTree as ET
from pathlib import Path
report, logs, install, tests_s, cpu, failed, total_s, install_s, bench_s = sys.argv[1:]
import torch
lines = [f'# GPU check ({"CPU dry run" if cpu == "1" else "GPU"}), '
         f'{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC', '']
lines.append(f'Result: **{"FAILED: " + failed if failed else "passed"}** in {total_s} s')
other_s = int(total_s) - int(install_s) - int(tests_s) - int(bench_s)
lines += ['', '## Where the time went', '', '| install | CUDA tests | benchmark | other (checks, report) | total |',
          '|---|---|---|---|---|', f'| {install_s} s | {tests_s} s | {bench_s} s | {other_s} s | {total_s} s |']
lines += ['', '## Versions', '']
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    lines.append(f'- GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}')
    try:
        smi = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                             capture_output=True, text=True, timeout=20).stdout.strip()
        lines.append(f'- driver: {smi}')
    except (OSError, subprocess.TimeoutExpired):
        pass
else:
    lines.append(f'- no CUDA device; CPU: {platform.processor() or platform.machine()}')
lines.append(f'- Python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}, '
             f'cuDNN {torch.backends.cudnn.version()})')
for mod in ('mmcv', 'mmengine', 'mmdet', 'timm'):
    try:
        lines.append(f'- {mod} {__import__(mod).__version__}')
    except Exception as e:
        lines.append(f'- {mod}: not importable ({type(e).__name__})')
lines += [f'- install: {install}', '', '## CUDA tests (`pytest tests/cuda -m cuda`)', '']
xml = Path(logs) / 'cuda-tests.xml'
if xml.exists():
    rows = []
    for case in ET.parse(xml).iter('testcase'):
        status = 'passed'
        for tag in ('failure', 'error', 'skipped'):
            el = case.find(tag)
            if el is not None:
                status = {'failure': 'FAILED', 'error': 'ERROR', 'skipped': 'skipped'}[tag]
                msg = (el.get('message') or '').splitlines()[0][:150] if el.get('message') else ''
                status += f': {msg}' if msg else ''
        rows.append(f'| {case.get("name")} | {status} | {float(case.get("time", 0)):.1f} |')
    lines += ['| test | result | s |', '|---|---|---|'] + rows + ['', f'{len(rows)} tests in {tests_s} s']
else:
    lines.append('not run (--no-tests) or no results')
bench = Path(logs) / 'benchmark.md'
lines += ['', '## Benchmark (`tools/analysis_tools/benchmark.py`)', '']
lines.append(bench.read_text() if bench.exists() and bench.read_text().strip() else 'not run')
sharded = Path(logs) / 'sharded.md'
lines += ['', '## Sharded smoke (`memory_plan.py --measure`: FSDP2, bf16, with_cp)', '']
lines.append(sharded.read_text() if sharded.exists() else 'not run (or failed: sharded.log)')
Path(report).write_text('\n'.join(lines) + '\n')
print('\n'.join(lines[:3]))
PYEOF
echo "==> [check] finished in $(($(date +%s) - T0)) s$([[ ${#FAILED[@]} -gt 0 ]] && echo "; FAILED: ${FAILED[*]}")"
[[ ${#FAILED[@]} -eq 0 ]]
