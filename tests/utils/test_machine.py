"""utils/machine.py: which instruction sets the libraries run, and the machine a timing comes from."""
import json
import os
import subprocess
import sys

from mmdet_dinov2.utils.machine import AVX512_CORE_FLAGS, onednn_runs_avx512


def test_onednn_is_chosen_only_where_it_runs_avx512():
    zen4, avx2_only = AVX512_CORE_FLAGS | {'avx2', 'fma'}, frozenset({'avx2', 'fma'})
    assert onednn_runs_avx512({}, zen4)
    for cap in ('AVX512_CORE', 'avx512_core_bf16', 'AVX10_1_512', 'ALL', 'DEFAULT'):
        assert onednn_runs_avx512({'ONEDNN_MAX_CPU_ISA': cap}, zen4), cap
    for cap in ('AVX2', 'avx2_vnni', 'SSE41', 'AVX'):
        assert not onednn_runs_avx512({'ONEDNN_MAX_CPU_ISA': cap}, zen4), cap
    assert not onednn_runs_avx512({'DNNL_MAX_CPU_ISA': 'AVX2'}, zen4)  # oneDNN's older name
    assert not onednn_runs_avx512({}, avx2_only)
    assert not onednn_runs_avx512({}, zen4 - {'avx512bw'})  # AVX-512F alone (Xeon Phi): not avx512_core


def test_machine_info_reports_the_caps_set_in_the_environment():
    """In a fresh process, as the quickstart's metrics.json records it."""
    code = 'import json; from mmdet_dinov2.utils import machine_info; print(json.dumps(machine_info()))'
    env = dict(os.environ, ATEN_CPU_CAPABILITY='default', ONEDNN_MAX_CPU_ISA='SSE41', OMP_NUM_THREADS='1')
    env.pop('MKL_ENABLE_INSTRUCTIONS', None)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info['aten_isa'] == 'DEFAULT' and info['onednn_avx512'] is False and info['threads'] == 1
    assert info['isa_caps'] == {'ATEN_CPU_CAPABILITY': 'default', 'ONEDNN_MAX_CPU_ISA': 'SSE41'}
    assert info['cpu'] and info['cores'] >= 1
