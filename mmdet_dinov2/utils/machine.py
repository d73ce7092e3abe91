"""What a CPU runs and what a timing was measured on (speed figures only transfer with it)."""
import os
import platform
from typing import Mapping

import torch

# the environment variables that cap each library's instruction set (benchmark_backbone.py --isa)
ISA_CAPS = ('ATEN_CPU_CAPABILITY', 'ONEDNN_MAX_CPU_ISA', 'MKL_ENABLE_INSTRUCTIONS')
# CPU flags of oneDNN's AVX-512 level (avx512_core), the lowest it runs AVX-512 convolutions on
AVX512_CORE_FLAGS = frozenset({'avx512f', 'avx512bw', 'avx512vl', 'avx512dq'})


def _cpuinfo_field(name: str) -> str:
    try:
        with open('/proc/cpuinfo') as f:
            return next((line.split(':', 1)[1].strip() for line in f if line.startswith(name)), '')
    except OSError:
        return ''


def cpu_model() -> str:
    """The CPU's model name (what lscpu prints)."""
    return _cpuinfo_field('model name') or platform.processor() or 'unknown CPU'


def cpu_flags() -> frozenset:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty elsewhere."""
    return frozenset(_cpuinfo_field('flags').split())


def onednn_runs_avx512(env: Mapping[str, str], flags: frozenset) -> bool:
    """Whether oneDNN picks AVX-512 kernels: the CPU has them and ONEDNN_MAX_CPU_ISA (or its old
    name DNNL_MAX_CPU_ISA) does not cap oneDNN below them."""
    if not AVX512_CORE_FLAGS <= flags:
        return False
    cap = (env.get('ONEDNN_MAX_CPU_ISA') or env.get('DNNL_MAX_CPU_ISA') or 'ALL').strip().upper()
    return cap in ('ALL', 'DEFAULT') or cap.startswith(('AVX512', 'AVX10'))


def machine_info() -> dict:
    """CPU model, ATen's instruction set, whether oneDNN runs AVX-512 (and so takes the linears),
    the caps set in the environment, torch's threads and the cores."""
    return dict(cpu=cpu_model(), aten_isa=torch.backends.cpu.get_cpu_capability(),
                onednn_avx512=onednn_runs_avx512(os.environ, cpu_flags()),
                isa_caps={k: os.environ[k] for k in ISA_CAPS if k in os.environ},
                threads=torch.get_num_threads(), cores=os.cpu_count())
