"""tools/lib/setup_helpers.sh: the functions of tools/setup_env.sh, run without a whole setup."""
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

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
