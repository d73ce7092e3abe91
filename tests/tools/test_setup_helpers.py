"""tools/lib/setup_helpers.sh: the functions of tools/setup_env.sh, run without a whole setup."""
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BASH = shutil.which('bash')  # tests below run it with a PATH of their own

FAKE_BUILD = '''
import sys, time
with open(sys.argv[1], 'a') as log:
    print('Building wheel for onedl-mmcv', file=log, flush=True)
    for done in range(1, 5):
        time.sleep(0.6)
        print(f'  [{done}/8] c++ -MMD -c unit{done}.cpp -o unit{done}.o', file=log, flush=True)
'''


def run_helper(call, env=None, path=None):
    """Run one function of setup_helpers.sh in bash; returns the CompletedProcess."""
    import os
    full_env = {k: v for k, v in os.environ.items() if k != 'TORCH'}
    full_env.update(env or {})
    if path is not None:
        full_env['PATH'] = path
    return subprocess.run([BASH, '-c', f'source {REPO}/tools/lib/setup_helpers.sh; {call}'],
                          capture_output=True, text=True, env=full_env, timeout=30)


def test_torch_keep_is_remembered_and_install_resets_it(tmp_path):
    venv = tmp_path / 'venv'
    venv.mkdir()
    assert run_helper(f'torch_mode {venv}').stdout.strip() == 'install'  # a new venv
    (venv / '.torch-mode').write_text('keep\n')  # written by an earlier `TORCH=keep make setup`
    assert run_helper(f'torch_mode {venv}').stdout.strip() == 'keep'  # a later plain `make test`
    assert run_helper(f'torch_mode {venv}', env={'TORCH': 'install'}).stdout.strip() == 'install'
    bad = run_helper(f'torch_mode {venv}', env={'TORCH': 'cuda'})
    assert bad.returncode == 2 and 'TORCH=cuda' in bad.stderr


def test_the_users_compiler_is_found_before_the_systems(tmp_path):
    conda, wrapper = tmp_path / 'conda' / 'bin', tmp_path / 'wrapper'
    for folder in (conda, wrapper):
        folder.mkdir(parents=True)
        (folder / 'g++').write_text('#!/bin/sh\n')
        (folder / 'g++').chmod(0o755)
    path = f'{wrapper}:{conda}:/usr/bin:/bin'
    found = run_helper(f'real_compiler g++ {wrapper}', path=path)
    assert found.stdout.strip() == str(conda / 'g++')  # conda's, and never the wrapper itself
    missing = run_helper(f'real_compiler g++ {wrapper}', path=f'{wrapper}:{tmp_path}')
    assert missing.returncode == 1 and 'no g++ on PATH' in missing.stderr


def test_progress_lines_count_units_and_estimate_the_rest(tmp_path):
    log = tmp_path / 'build.log'
    log.touch()
    build = subprocess.Popen([sys.executable, '-c', FAKE_BUILD, str(log)])
    reaper = threading.Thread(target=build.wait)  # as bash reaps its own background job
    reaper.start()
    out = subprocess.run(['bash', '-c', f'source {REPO}/tools/lib/setup_helpers.sh; '
                          f'watch_build {build.pid} {log} 0.25'],
                         capture_output=True, text=True, timeout=60)
    reaper.join()
    lines = out.stdout.splitlines()
    found = [tuple(map(int, re.search(r'(\d+)/(\d+) units compiled in (\d+) min (\d+) s; about '
                                      r'(\d+) min (\d+) s left', line).groups()))
             for line in lines]
    assert found and len(found) == len(lines), out.stdout + out.stderr
    done = [f[0] for f in found]
    assert done == sorted(set(done)) and done[-1] == 4 and all(f[1] == 8 for f in found)
    last = found[-1]
    elapsed, left = 60 * last[2] + last[3], 60 * last[4] + last[5]
    assert left == elapsed * (8 - 4) // 4  # the rate so far, for the 4 units not yet done


WRAPPER = REPO / 'tools' / 'lib' / 'mmcv_cxx.sh'
# a compiler that records its arguments, one line each call, and writes its -o output
FAKE_CXX = '''#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/calls.log"
out=""; prev=""
for a in "$@"; do [[ "$prev" == -o ]] && out=$a; prev=$a; done
[[ -n "$out" ]] && echo built > "$out"
[[ -n "${FAIL_HEADER:-}" && " $* " == *" c++-header "* ]] && exit 1
exit 0
'''


def wrapped_compile(tmp_path, source, *flags, env=None):
    """Run the wrapper on SOURCE with a fake real compiler; returns (CompletedProcess, calls)."""
    import os
    fake = tmp_path / 'fake' / 'c++'
    if not fake.exists():
        fake.parent.mkdir()
        fake.write_text(FAKE_CXX)
        fake.chmod(0o755)
        (tmp_path / 'pch').mkdir()
    full_env = dict(os.environ, MMCV_REAL_CXX=str(fake), MMCV_PCH_DIR=str(tmp_path / 'pch'), **(env or {}))
    args = ['-MMD', '-MF', 'u.o.d', '-I/inc', '-O3', '-g', '-DNDEBUG', '-c', str(source), '-o', 'u.o',
            '-std=c++17', *flags]
    done = subprocess.run([BASH, str(WRAPPER), *args], capture_output=True, text=True, env=full_env,
                          cwd=tmp_path, timeout=60)
    return done, (tmp_path / 'fake' / 'calls.log').read_text().splitlines()


def test_the_mmcv_compiler_wrapper_builds_one_header_and_starts_each_unit_from_it(tmp_path):
    unit = '/src/mmcv/ops/csrc/pytorch/roi_align.cpp'
    done, calls = wrapped_compile(tmp_path, unit)
    assert done.returncode == 0, done.stderr
    header = tmp_path / 'pch' / 'torch_types.h'
    assert header.read_text() == '#include <torch/types.h>\n'
    # the header, built with the unit's flags less its input, output and dependency file
    assert calls[0] == f'-I/inc -O3 -DNDEBUG -std=c++20 -x c++-header {header} -o {header}.gch.tmp'
    assert (tmp_path / 'pch' / 'torch_types.h.gch').exists()
    # the unit: C++20, no -g, starting from the header
    assert calls[1] == (f'-include {header} -Winvalid-pch -MMD -MF u.o.d -I/inc -O3 -DNDEBUG -c {unit} -o u.o '
                        '-std=c++20')
    done, calls = wrapped_compile(tmp_path, '/src/mmcv/ops/csrc/pytorch/cpu/nms.cpp')
    assert len(calls) == 3 and calls[2].startswith(f'-include {header} ')  # built once only
    # not mmcv's own unit (nvcc's host-side files), or linking: the flags are changed, nothing added
    _, calls = wrapped_compile(tmp_path, '/tmp/tmpxft_0001.cudafe1.cpp')
    assert calls[3] == '-MMD -MF u.o.d -I/inc -O3 -DNDEBUG -c /tmp/tmpxft_0001.cudafe1.cpp -o u.o -std=c++20'


def test_the_mmcv_compiler_wrapper_compiles_without_the_header_when_it_fails(tmp_path):
    unit = '/src/mmcv/ops/csrc/pytorch/roi_align.cpp'
    done, calls = wrapped_compile(tmp_path, unit, env={'FAIL_HEADER': '1'})
    assert done.returncode == 0 and (tmp_path / 'pch' / 'torch_types.h.failed').exists()
    assert '-include' not in calls[1] and calls[1].endswith('-o u.o -std=c++20')
    _, calls = wrapped_compile(tmp_path, unit, env={'FAIL_HEADER': '1'})
    assert len(calls) == 3 and '-include' not in calls[2]  # not tried again


@pytest.mark.skipif(shutil.which('g++') is None, reason='needs g++')
def test_gcc_uses_the_wrappers_precompiled_header(tmp_path):
    """With the real gcc and a stand-in <torch/types.h>: -H marks a header read from its .gch with !."""
    import os
    (tmp_path / 'inc' / 'torch').mkdir(parents=True)
    stand_in = '#pragma once\n#ifndef BASE\n#define BASE 40\n#endif\ninline int answer() { return BASE + 2; }\n'
    (tmp_path / 'inc' / 'torch' / 'types.h').write_text(stand_in)
    unit = tmp_path / 'mmcv' / 'ops' / 'csrc' / 'pytorch' / 'op.cpp'
    unit.parent.mkdir(parents=True)
    unit.write_text('#include <torch/types.h>\nint op() { return answer(); }\n')
    (tmp_path / 'pch').mkdir()
    env = dict(os.environ, MMCV_REAL_CXX=shutil.which('g++'), MMCV_PCH_DIR=str(tmp_path / 'pch'))
    cmd = [BASH, str(WRAPPER), f'-I{tmp_path / "inc"}', '-O2', '-fPIC', '-H', '-c', str(unit), '-o',
           str(tmp_path / 'op.o'), '-std=c++17']
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert f'! {tmp_path}/pch/torch_types.h.gch' in first.stderr
    assert (tmp_path / 'op.o').stat().st_size > 0
    # a macro the header uses, defined otherwise: gcc refuses the .gch and reads the header as text
    other = subprocess.run(cmd + ['-DBASE=0'], capture_output=True, text=True, env=env, timeout=120)
    assert other.returncode == 0, other.stderr
    assert "torch_types.h.gch: not used because `BASE' is defined" in other.stderr
    assert f'x {tmp_path}/pch/torch_types.h.gch' in other.stderr
    assert f'! {tmp_path}/pch/torch_types.h.gch' not in other.stderr
