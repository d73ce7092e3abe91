"""tools/lib/setup_helpers.sh: the functions of tools/setup_env.sh, run without a whole setup."""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
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
# a compiler that records its arguments, one line each call
FAKE_CXX = '''#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/calls.log"
'''


def test_the_mmcv_compiler_wrapper_asks_for_cxx20_without_debug_info(tmp_path):
    fake = tmp_path / 'c++'
    fake.write_text(FAKE_CXX)
    fake.chmod(0o755)
    args = ['-MMD', '-MF', 'u.o.d', '-I/inc', '-O3', '-g', '-DNDEBUG', '-c',
            '/src/mmcv/ops/csrc/pytorch/nms.cpp', '-o', 'u.o', '-std=c++17', '-ggdb3', '-g1']
    done = subprocess.run([BASH, str(WRAPPER), *args], capture_output=True, text=True,
                          env=dict(os.environ, MMCV_REAL_CXX=str(fake)), timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / 'calls.log').read_text() == (
        '-MMD -MF u.o.d -I/inc -O3 -DNDEBUG -c /src/mmcv/ops/csrc/pytorch/nms.cpp -o u.o -std=c++20\n')
    unset = subprocess.run([BASH, str(WRAPPER), '-c', 'x.cpp'], capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != 'MMCV_REAL_CXX'}, timeout=60)
    assert unset.returncode != 0 and 'MMCV_REAL_CXX must name the real C++ compiler' in unset.stderr


# --- setup must survive its own progress display and name the step of any failure ---------------

def strict_bash(script, timeout=60, **kwargs):
    """Run SCRIPT in bash under `set -euo pipefail` with setup_helpers.sh sourced."""
    return subprocess.run([BASH, '-c', f'set -euo pipefail; source {REPO}/tools/lib/setup_helpers.sh\n{script}'],
                          capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.mark.parametrize('log', ['empty', 'missing'])
def test_watch_build_survives_a_log_without_progress_under_strict_mode(tmp_path, log):
    """pip spends its first ~45 s downloading: the log has no "[done/total]" line for many polls."""
    path = tmp_path / 'build.log'
    if log == 'empty':
        path.touch()
    done = strict_bash(f'(sleep 2) & watch_build $! {path} 0.2; echo survived')
    assert done.returncode == 0 and done.stdout.strip() == 'survived', done.stdout + done.stderr


def test_watch_build_returns_soon_after_a_build_ending_between_two_polls(tmp_path):
    log = tmp_path / 'build.log'
    log.write_text('[3/78] c++ -c a.cpp\n')
    start = time.monotonic()
    done = strict_bash(f'(sleep 1) & watch_build $! {log} 30; echo survived')
    assert done.returncode == 0 and done.stdout.strip() == 'survived', done.stderr
    assert time.monotonic() - start < 10  # not the 30 s interval


def test_a_failure_inside_a_function_names_its_step(tmp_path):
    done = strict_bash('setup_traps setup\n'
                       'step "build onedl-mmcv" "install g++"\n'
                       'inner() { real_compiler no-such-compiler; }\n'
                       'outer() { local cxx; cxx=$(inner); echo "$cxx"; }\n'
                       'outer\n'
                       'echo unreachable')
    assert done.returncode == 1 and 'unreachable' not in done.stdout
    assert done.stderr.count('!! setup failed in step: build onedl-mmcv (exit 1)') == 1, done.stderr
    assert '!! what to try: install g++' in done.stderr


def copy_of_setup(tmp_path):
    """The files tools/setup_env.sh reads, in a folder of their own (it builds .venv beside them)."""
    root = tmp_path / 'repo'
    shutil.copytree(REPO / 'tools' / 'lib', root / 'tools' / 'lib')
    shutil.copy(REPO / 'tools' / 'setup_env.sh', root / 'tools')
    for name in ('requirements.txt', 'requirements.lock', 'pyproject.toml'):
        shutil.copy(REPO / name, root)
    return root


def run_setup(root, timeout=120, **env):
    # none of the caller's setup settings (CI points the caches elsewhere): only what a test gives
    full_env = {k: v for k, v in os.environ.items()
                if k not in ('TORCH', 'VIRTUAL_ENV', 'MMDET_DINOV2_CACHE', 'PIP_CACHE_DIR', 'UV_CACHE_DIR')}
    full_env.update(env)
    return subprocess.run([BASH, str(root / 'tools' / 'setup_env.sh')], capture_output=True,
                          text=True, env=full_env, timeout=timeout)


def test_setup_names_the_step_when_the_cache_folder_cannot_be_written(tmp_path):
    root = copy_of_setup(tmp_path)
    (tmp_path / 'home').write_text('a file, not a folder')  # as a read-only home: mkdir fails
    done = run_setup(root, HOME=str(tmp_path / 'home'))
    assert done.returncode != 0
    assert 'cannot write to' in done.stderr and 'MMDET_DINOV2_CACHE' in done.stderr
    assert '!! setup failed in step: check the cache folder' in done.stderr, done.stderr
    assert not (root / '.venv').exists()


def test_setup_names_the_step_when_the_disk_is_too_full(tmp_path):
    root = copy_of_setup(tmp_path)
    # more free space asked for than any disk has: as a full disk
    done = run_setup(root, MMDET_DINOV2_CACHE=str(tmp_path / 'cache'), SETUP_MIN_FREE_GIB='1000000000')
    assert done.returncode != 0
    assert 'GiB free, setup needs about 1000000000 GiB there' in done.stderr, done.stderr
    assert '!! setup failed in step: check the cache folder' in done.stderr
    assert not (root / '.venv').exists()


def python312():
    """A working Python 3.12 (pyenv's shim on PATH only runs where 3.12 is selected), or None."""
    candidates = [shutil.which('python3.12'), *sorted(Path(os.environ.get('PYENV_ROOT', Path.home() / '.pyenv'))
                                                       .glob('versions/3.12*/bin/python3.12'))]
    candidates += sorted(Path('/root/.pyenv').glob('versions/3.12*/bin/python3.12'))
    for exe in filter(None, candidates):
        if subprocess.run([str(exe), '--version'], capture_output=True).returncode == 0:
            return str(exe)
    return None


@pytest.mark.skipif(python312() is None, reason='needs a Python 3.12')
def test_setup_refuses_another_python_naming_the_step(tmp_path):
    root = copy_of_setup(tmp_path)
    done = run_setup(root, PYTHON=python312(), MMDET_DINOV2_CACHE=str(tmp_path / 'cache'))
    assert done.returncode != 0
    assert '.venv has Python 3.12' in done.stderr and 'PYTHON=/path/to/python3.11' in done.stderr
    assert '!! setup failed in step: create virtual environment .venv' in done.stderr, done.stderr


def test_setup_names_a_bad_torch_setting(tmp_path):
    done = run_setup(copy_of_setup(tmp_path), TORCH='cuda', MMDET_DINOV2_CACHE=str(tmp_path / 'cache'))
    assert done.returncode == 2 and 'TORCH=cuda' in done.stderr
    assert '!! setup failed in step: read the settings' in done.stderr


# A build of a few processes: the launcher, a grandchild that ignores SIGTERM (as a compiler
# busy in a system call may take a while), and one more; each writes its pid to a file.
TREE_BUILD = '''
import os, signal, subprocess, sys, time
pids = open(sys.argv[1], 'a')
print(os.getpid(), file=pids, flush=True)
for stubborn in (0, 1):
    code = ('import os, signal, sys, time\\n'
            + ('signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n' if stubborn else '')
            + 'print(os.getpid(), file=open(sys.argv[1], "a"), flush=True)\\ntime.sleep(300)')
    subprocess.Popen([sys.executable, '-c', code, sys.argv[1]])
time.sleep(300)
'''


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f'/proc/{pid}/stat').read_text()  # a zombie is dead to us
    return stat.rsplit(')', 1)[1].split()[0] != 'Z'


@pytest.mark.parametrize('how', ['error', signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_the_background_build_is_gone_when_setup_ends(tmp_path, how):
    script = (f'setup_traps setup\nstep "build onedl-mmcv" "read the log"\n'
              f'start_build {tmp_path}/build.log {sys.executable} -c "$TREE" {tmp_path}/pids\n'
              + ('sleep 2; false\n' if how == 'error' else f'watch_build $BUILD_PID {tmp_path}/build.log 1\n'))
    # SIGINT as a terminal's shell has it: a shell started with it ignored (a background job's
    # child, as pytest may be) cannot trap it
    shell = subprocess.Popen([BASH, '-c', f'set -euo pipefail; source {REPO}/tools/lib/setup_helpers.sh\n'
                              + script], env=dict(os.environ, TREE=TREE_BUILD),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        check_the_build_stops(shell, how, tmp_path / 'pids')
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.communicate()
        leader = (tmp_path / 'pids').read_text().split()[:1] if (tmp_path / 'pids').exists() else []
        for pid in leader:  # the build's group (start_build's setsid): nothing outlives a failure
            try:
                os.killpg(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def check_the_build_stops(shell, how, pids):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not pids.exists() or len(pids.read_text().split()) < 3):
        time.sleep(0.1)
    build = [int(p) for p in pids.read_text().split()]
    assert len(build) == 3 and all(alive(p) for p in build)
    if how != 'error':
        shell.send_signal(how)
    out, err = shell.communicate(timeout=30)
    deadline = time.monotonic() + 15  # TERM, then KILL after 5 s; the kill -9 guard polls each second
    while time.monotonic() < deadline and any(alive(p) for p in build):
        time.sleep(0.2)
    assert not [p for p in build if alive(p)], 'build processes outlived setup'
    if how == 'error':
        assert shell.returncode == 1 and '!! setup failed in step: build onedl-mmcv' in err
    elif how == signal.SIGKILL:
        assert shell.returncode == -signal.SIGKILL
    else:
        assert shell.returncode == 128 + how and '!! setup interrupted' in err and 'build onedl-mmcv' in err
