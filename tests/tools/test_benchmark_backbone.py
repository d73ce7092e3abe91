"""tools/analysis_tools/benchmark_backbone.py --isa avx2: the environment it sets turns AVX-512 off
in ATen and oneDNN (both report what they use); the tool's table has a row per ISA; --live-memory
makes freed blocks leave the RSS."""
import json
import os
import subprocess
import sys

import pytest
import torch

from mmdet_dinov2.utils.machine import cpu_model
from tests.helpers import REPO, load_tool

bench = load_tool('tools/analysis_tools/benchmark_backbone.py')

PROBE = '''
import torch

from mmdet_dinov2.utils.machine import cpu_model
print('ATEN', torch.backends.cpu.get_cpu_capability())
x = torch.randn(1, 8, 16, 16).contiguous(memory_format=torch.channels_last)
torch.mkldnn_convolution(x, torch.randn(8, 8, 1, 1), None, (0, 0), (1, 1), (1, 1), 1)
'''


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() not in ('AVX2', 'AVX512'),
                    reason='an x86 CPU with AVX2 is needed')
def test_the_avx2_environment_caps_aten_and_onednn():
    env = dict(os.environ, ONEDNN_VERBOSE='1', **bench.ISA_ENV['avx2'])
    out = subprocess.run([sys.executable, '-c', PROBE], capture_output=True, text=True, env=env,
                         timeout=120).stdout
    assert 'ATEN AVX2' in out
    isa = [line for line in out.splitlines() if ',isa:' in line]
    assert isa and 'AVX2' in isa[0] and 'AVX-512' not in isa[0], out[-2000:]


def test_one_row_per_size_and_isa(monkeypatch, capsys):
    calls = []

    def fake_worker(args, impl, size, isa='native'):
        calls.append((impl, size, isa))
        return dict(times=[1.0 if isa == 'native' else 1.5], peak_gib=2.0, step_gib=0.75, threads=2,
                    aten_isa='AVX512' if isa == 'native' else 'AVX2')
    monkeypatch.setattr(bench, 'run_worker', fake_worker)
    monkeypatch.setattr(sys, 'argv', ['benchmark_backbone.py', '--sizes', '64', '--repeats', '1'])
    bench.main()
    out = capsys.readouterr().out
    assert calls == [('ours', 64, 'native'), ('ours', 64, 'avx2')]
    assert '| 64x64 | native (AVX512) | 1.00 | 2.00 / 0.75 |' in out
    assert '| 64x64 | avx2 (AVX2) | 1.50 | 2.00 / 0.75 |' in out
    assert cpu_model() in out


def test_ratio_columns_against_the_original(monkeypatch, capsys):
    def fake_worker(args, impl, size, isa='native'):
        ours = impl == 'ours'
        return dict(times=[1.0 if ours else 2.0], peak_gib=2.0 if ours else 2.5,
                    step_gib=0.7 if ours else 1.0, threads=2, aten_isa='AVX512')
    monkeypatch.setattr(bench, 'run_worker', fake_worker)
    monkeypatch.setattr(sys, 'argv', ['benchmark_backbone.py', '--sizes', '64', '--repeats', '1',
                                      '--isa', 'native', '--reference-dir', '/nowhere'])
    bench.main()
    out = capsys.readouterr().out
    assert '| 64x64 | native (AVX512) | 1.00 | 2.00 / 0.70 | 2.00 | 2.50 / 1.00 | 0.50 | 0.80 | 0.70 |' in out


def test_a_worker_reports_what_one_step_adds_to_memory():
    out = subprocess.run([sys.executable, str(REPO / 'tools' / 'analysis_tools' / 'benchmark_backbone.py'),
                          '--worker', '--impl', 'ours', '--size', '64', '--runs', '1', '--warmup', '0'],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(r['times']) == 1 and r['times'][0] > 0
    assert 0 < r['step_gib'] < r['peak_gib']  # the libraries and the model come before the step


RETAIN_PROBE = '''
import os, torch
def rss_mib():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2 ** 20
big = torch.ones(24 * 2 ** 18)  # 24 MiB: mmapped; freeing it raises glibc's threshold to 24 MiB
del big
before = rss_mib()
block = torch.ones(16 * 2 ** 18)  # 16 MiB, below the raised threshold: from the heap unless capped
del block
print(rss_mib() - before)
'''


@pytest.mark.skipif(not sys.platform.startswith('linux') or os.confstr('CS_GNU_LIBC_VERSION') is None,
                    reason="glibc's malloc settings")
def test_live_memory_makes_freed_blocks_leave_the_rss():
    def retained_mib(env):
        out = subprocess.run([sys.executable, '-c', RETAIN_PROBE], capture_output=True, text=True, env=env,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return float(out.stdout.strip().splitlines()[-1])

    default = {k: v for k, v in bench.worker_env('native').items() if not k.startswith('MALLOC_')}
    assert 'MALLOC_MMAP_THRESHOLD_' not in default
    assert retained_mib(default) > 12  # the default allocator keeps the freed 16 MiB
    assert retained_mib(bench.worker_env('native', live_memory=True)) < 4
    assert bench.worker_env('avx2', live_memory=True)['ATEN_CPU_CAPABILITY'] == 'avx2'
