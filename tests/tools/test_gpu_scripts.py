"""tools/gpu/: argument handling, the wheelhouse (against a local folder of fake wheels, offline) and
its manifest, the install script's refusals and plan, and the benchmark's plan and table; nothing is
compiled here (`make offline-check` runs the whole chain, minutes)."""
import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import load_tool

ROOT = Path(__file__).resolve().parents[2]
GPU = ROOT / 'tools' / 'gpu'
wheelhouse = load_tool('tools/gpu/wheelhouse.py')
benchmark = load_tool('tools/analysis_tools/benchmark.py')


def run(*args, env=None, cwd=ROOT):
    """A script's exit status and its stdout + stderr."""
    full_env = {**os.environ, 'PY': sys.executable, **(env or {})}
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=full_env, cwd=cwd,
                       timeout=300)
    return p.returncode, p.stdout + p.stderr


def fake_wheel(folder: Path, name: str, version: str, requires=()):
    """A minimal pure-Python wheel: one module, METADATA, WHEEL, RECORD."""
    dist = f'{name.replace("-", "_")}-{version}'
    files = {f'{name.replace("-", "_")}.py': 'X = 1\n',
             f'{dist}.dist-info/METADATA': '\n'.join(
                 ['Metadata-Version: 2.1', f'Name: {name}', f'Version: {version}']
                 + [f'Requires-Dist: {r}' for r in requires]) + '\n',
             f'{dist}.dist-info/WHEEL': 'Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n'
                                        'Tag: py3-none-any\n'}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()
        record.append(f'{path},sha256={digest},{len(text.encode())}')
    record.append(f'{dist}.dist-info/RECORD,,')
    files[f'{dist}.dist-info/RECORD'] = '\n'.join(record) + '\n'
    path = folder / f'{dist}-py3-none-any.whl'
    with zipfile.ZipFile(path, 'w') as zf:
        for member, text in files.items():
            zf.writestr(member, text)
    return path


@pytest.fixture
def local_index(tmp_path):
    """A folder of fake wheels, a package list naming two of them, a node list: pip offline env."""
    src = tmp_path / 'src'
    src.mkdir()
    fake_wheel(src, 'tinyalpha', '1.0', requires=['tinybeta>=2', 'numpy', 'opencv-python',
                                                  'winonly; sys_platform == "win32"', 'docs; extra == "doc"'])
    fake_wheel(src, 'tinybeta', '2.1')
    fake_wheel(src, 'tinygamma', '0.1', requires=['notanywhere'])
    packages = tmp_path / 'packages.txt'
    packages.write_text('# test list\ntinyalpha==1.0\ntinybeta==2.1\n')
    node = tmp_path / 'node.txt'
    node.write_text('numpy  # on the node\nopencv-python-headless\n')
    env = {'PIP_NO_INDEX': '1', 'PIP_FIND_LINKS': str(src), 'PIP_CONFIG_FILE': os.devnull}
    return dict(src=src, packages=packages, node=node, env=env, out=tmp_path / 'wh')


def test_make_wheelhouse_downloads_writes_manifest_and_checks_closure(local_index):
    rc, out = run(GPU / 'make_wheelhouse.sh', '--python', '3.12', '--out', local_index['out'],
                  '--packages', local_index['packages'], '--node-packages', local_index['node'],
                  '--no-mmcv', env=local_index['env'])
    assert rc == 0, out
    assert 'MiB' in out
    wh = local_index['out']
    assert sorted(p.name for p in wh.glob('*.whl')) == ['tinyalpha-1.0-py3-none-any.whl',
                                                        'tinybeta-2.1-py3-none-any.whl']
    manifest = (wh / 'MANIFEST').read_text().splitlines()
    assert manifest[0].startswith('# python 3.12')
    rows = [line.split() for line in manifest if not line.startswith('#')]
    assert [(r[0], r[1]) for r in rows] == [('tinyalpha', '1.0'), ('tinybeta', '2.1')]
    for name, version, digest, filename in rows:
        assert hashlib.sha256((wh / filename).read_bytes()).hexdigest() == digest
    assert wheelhouse.verify(wh) == []


def test_make_wheelhouse_names_a_requirement_nobody_provides(local_index):
    local_index['packages'].write_text('tinygamma==0.1\n')
    rc, out = run(GPU / 'make_wheelhouse.sh', '--python', '3.12', '--out', local_index['out'],
                  '--packages', local_index['packages'], '--node-packages', local_index['node'],
                  '--no-mmcv', env=local_index['env'])
    assert rc == 1
    assert 'notanywhere (needed by tinygamma)' in out and 'wheelhouse.txt' in out


@pytest.mark.parametrize('args, message', [
    (['--python', '3'], 'MAJOR.MINOR'),
    (['--bogus'], "unknown argument '--bogus'"),
    (['--packages', '/nonexistent.txt'], 'no file'),
])
def test_make_wheelhouse_refuses_bad_arguments(args, message):
    rc, out = run(GPU / 'make_wheelhouse.sh', *args)
    assert rc == 2 and message in out


def test_make_wheelhouse_never_takes_torch(tmp_path):
    packages = tmp_path / 'p.txt'
    packages.write_text('addict==2.4.0\ntorch==2.11.0\n')
    rc, out = run(GPU / 'make_wheelhouse.sh', '--packages', packages, '--dry-run')
    assert rc == 2 and "lists 'torch==2.11.0'" in out


@pytest.mark.parametrize('args, message', [
    (['--cuda-wheel', '--arch', 'sm_90'], 'compute capability X.Y'),
    (['--cuda-wheel', '--cuda', '13'], '--cuda takes MAJOR.MINOR'),
    (['--cuda-wheel', '--torch', '2.11'], '--torch takes a version X.Y.Z'),
    (['--cuda-wheel', '--no-mmcv'], 'cannot go with --no-mmcv'),
])
def test_make_wheelhouse_refuses_bad_cross_build_arguments(args, message):
    rc, out = run(GPU / 'make_wheelhouse.sh', *args, '--dry-run')
    assert rc == 2 and message in out


def test_make_wheelhouse_dry_run_prints_the_cross_build():
    rc, out = run(GPU / 'make_wheelhouse.sh', '--cuda-wheel', '--dry-run')
    assert rc == 0, out
    assert 'CUDA 13.0 ops for sm90, Python 3.12, torch 2.11.0' in out and 'TORCH_CUDA_ARCH_LIST=9.0' in out


def test_make_wheelhouse_dry_run_prints_the_plan():
    rc, out = run(GPU / 'make_wheelhouse.sh', '--dry-run')
    assert rc == 0, out
    assert 'cp312' in out and 'onedl-mmengine==0.10.12' in out and 'onedl-mmcv==2.3.6' in out
    assert '--only-binary :all:' in out and 'manylinux_2_28_x86_64' in out


def test_the_default_list_pins_what_requirements_txt_pins():
    pins = dict(line.split('==') for line in (ROOT / 'requirements.txt').read_text().splitlines()
                if '==' in line and not line.startswith('#'))
    listed = dict(line.split('==') for line in (GPU / 'wheelhouse.txt').read_text().splitlines()
                  if '==' in line and not line.startswith('#'))
    for name, version in listed.items():
        if name in pins:
            assert pins[name] == version, name
    assert not {'torch', 'torchvision'} & set(listed)


def test_verify_finds_a_changed_and_an_unlisted_file(local_index):
    wh = local_index['out']
    wh.mkdir()
    for w in local_index['src'].glob('tiny[ab]*.whl'):
        (wh / w.name).write_bytes(w.read_bytes())
    wheelhouse.write_manifest(wh, '3.12')
    assert wheelhouse.verify(wh) == []
    alpha = next(wh.glob('tinyalpha*'))
    alpha.write_bytes(alpha.read_bytes() + b'x')
    (wh / 'extra-1.0-py3-none-any.whl').write_bytes(b'')
    problems = wheelhouse.verify(wh)
    assert any('tinyalpha' in p and 'sha256' in p for p in problems)
    assert any('extra-1.0' in p and 'not in MANIFEST' in p for p in problems)


@pytest.fixture
def fake_python(tmp_path):
    """fake_python(torch_version or None) -> an interpreter whose `import torch` finds a stub."""
    def make(version, cuda=None):
        site = tmp_path / f'site-{version}-{cuda}'
        (site / 'torch' / 'utils').mkdir(parents=True, exist_ok=True)
        if version is None:
            (site / 'torch' / '__init__.py').write_text('raise ImportError("no torch here")\n')
        else:
            (site / 'torch' / '__init__.py').write_text(
                f'__version__ = {version!r}\nclass version:\n    cuda = {cuda!r}\n'
                'class cuda:\n    @staticmethod\n    def is_available():\n        return False\n')
            (site / 'torch' / 'utils' / '__init__.py').write_text('')
            (site / 'torch' / 'utils' / 'cpp_extension.py').write_text('CUDA_HOME = None\n')
        py = tmp_path / f'python-{version}-{cuda}'
        py.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} "$@"\n')
        py.chmod(0o755)
        return py
    return make


@pytest.fixture
def wheelhouse_311(tmp_path):
    """A wheelhouse folder for this Python (a fake mmcv archive; nothing is built from it)."""
    wh = tmp_path / 'wh'
    wh.mkdir()
    fake_wheel(wh, 'tinybeta', '2.1')
    (wh / 'onedl_mmcv-2.3.6.tar.gz').write_bytes(b'')
    (wh / 'MANIFEST').write_text(f'# python {sys.version_info.major}.{sys.version_info.minor}\n')
    return wh


@pytest.mark.parametrize('version, message', [(None, 'has no torch'), ('2.5.1', '>= 2.8 is needed')])
def test_install_offline_refuses_without_a_recent_torch(version, message, fake_python, wheelhouse_311):
    rc, out = run(GPU / 'install_offline.sh', wheelhouse_311, '--python', fake_python(version))
    assert rc == 1 and message in out and 'never' in out


def trim_key():
    return subprocess.run([sys.executable, str(ROOT / 'tools' / 'lib' / 'trim_mmcv.py'), 'key'],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_install_offline_dry_run_prints_key_and_plan(fake_python, wheelhouse_311, tmp_path):
    rc, out = run(GPU / 'install_offline.sh', wheelhouse_311, '--python', fake_python('2.11.0+cpu'),
                  '--cache', tmp_path / 'cache', '--jobs', '3', '--dry-run')
    assert rc == 0, out
    tag = f'cp{sys.version_info.major}{sys.version_info.minor}'
    key = f'torch-2.11.0_cpu-{tag}-cpu-{trim_key()}'  # the trimmed build's, never a full one's
    assert f'onedl-mmcv-2.3.6/{key} (miss: compile)' in out
    assert 'MAX_JOBS=3 FORCE_CUDA=0' in out and 'tinybeta-2.1-py3-none-any.whl' in out
    assert 'nothing installed' in out
    rc, out = run(GPU / 'install_offline.sh', wheelhouse_311, '--python', fake_python('2.11.0+cpu'),
                  '--cache', tmp_path / 'cache', '--dry-run', env={'MMCV_FULL_BUILD': '1'})
    assert f'onedl-mmcv-2.3.6/torch-2.11.0_cpu-{tag}-cpu-full (miss: compile)' in out
    (tmp_path / 'cache' / 'onedl-mmcv-2.3.6' / key).mkdir(parents=True)
    (tmp_path / 'cache' / 'onedl-mmcv-2.3.6' / key / 'x.whl').write_bytes(b'')
    rc, out = run(GPU / 'install_offline.sh', wheelhouse_311, '--python', fake_python('2.11.0+cpu'),
                  '--cache', tmp_path / 'cache', '--dry-run')
    assert rc == 0 and 'hit: nothing to compile' in out


def test_install_offline_takes_the_cross_built_wheel_only_for_its_node(fake_python, wheelhouse_311, tmp_path):
    py = fake_python('2.11.0+cu130', cuda='13.0')
    tag = f'cp{sys.version_info.major}{sys.version_info.minor}'
    # no prebuilt wheel and no CUDA toolkit: nothing could make the CUDA ops
    rc, out = run(GPU / 'install_offline.sh', wheelhouse_311, '--python', py, '--arch', '9.0', '--dry-run')
    assert rc == 1 and 'no CUDA toolkit' in out and f'torch-2.11.0_cu130-{tag}-cu130-sm90-{trim_key()}' in out
    prebuilt = wheelhouse_311 / 'prebuilt' / f'torch-2.11.0_cu130-{tag}-cu130-sm90-{trim_key()}'
    prebuilt.mkdir(parents=True)
    (prebuilt / f'onedl_mmcv-2.3.6-{tag}-{tag}-linux_x86_64.whl').write_bytes(b'')
    rc, out = run(GPU / 'install_offline.sh', wheelhouse_311, '--python', py, '--arch', '9.0', '--dry-run')
    assert rc == 0 and "the wheelhouse's cross-built wheel for" in out and 'nothing to compile' in out
    # another architecture: the prebuilt wheel is not taken
    rc, out = run(GPU / 'install_offline.sh', wheelhouse_311, '--python', py, '--arch', '8.0', '--dry-run')
    assert rc == 1 and 'sm80' in out and 'no CUDA toolkit' in out
    rc, out = run(GPU / 'install_offline.sh', wheelhouse_311, '--python', py, '--arch', 'sm90', '--dry-run')
    assert rc == 2 and 'compute capability X.Y' in out


def test_install_offline_refuses_a_wheelhouse_for_another_python(fake_python, wheelhouse_311):
    (wheelhouse_311 / 'MANIFEST').write_text('# python 3.9\n')
    rc, out = run(GPU / 'install_offline.sh', wheelhouse_311, '--python', fake_python('2.11.0'), '--dry-run')
    assert rc == 1 and 'made for Python 3.9' in out and 'make_wheelhouse.sh --python' in out


@pytest.mark.parametrize('args, message', [
    ([], 'usage:'),
    (['/nonexistent-wheelhouse'], 'no folder /nonexistent-wheelhouse'),
    (['WH', 'WH2'], 'one WHEELHOUSE only'),
    (['WH', '--jobs', '0'], '--jobs takes a positive number'),
    (['WH', '--bogus'], "unknown option '--bogus'"),
])
def test_install_offline_refuses_bad_arguments(args, message, wheelhouse_311):
    args = [str(wheelhouse_311) if a == 'WH' else a for a in args]
    rc, out = run(GPU / 'install_offline.sh', *args)
    assert rc == 2 and message in out


def test_install_offline_needs_a_manifest(tmp_path):
    rc, out = run(GPU / 'install_offline.sh', tmp_path)
    assert rc == 2 and 'has no MANIFEST' in out


@pytest.mark.parametrize('args, message', [(['--bogus'], "unknown argument '--bogus'"),
                                           (['--budget-s', 'soon'], 'whole seconds')])
def test_check_refuses_bad_arguments(args, message):
    rc, out = run(GPU / 'check.sh', *args)
    assert rc == 2 and message in out


def test_check_without_cuda_points_to_the_dry_run(fake_python):
    rc, out = run(GPU / 'check.sh', '--python', fake_python('2.11.0'))
    assert rc == 1 and '--cpu' in out


def test_benchmark_runs_the_issue_targets_first():
    import argparse
    args = argparse.Namespace(archs=['s', 'b', 'l', 'g'], g_batches=[1, 2], batch=2,
                              dtypes=['fp32', 'bf16'], with_cp=['off', 'on'])
    plan = benchmark.plan(args)
    assert len(plan) == 3 * 4 + 2 * 4 and len(set(plan)) == len(plan)
    assert plan[:3] == [('s', 2, 'fp32', 'off'), ('s', 2, 'bf16', 'off'), ('l', 2, 'bf16', 'on')]
    assert plan.index(('g', 2, 'bf16', 'on')) < plan.index(('g', 1, 'bf16', 'on')) < 8


def test_benchmark_table_shows_numbers_oom_and_errors():
    rows = [dict(arch='S', dtype='fp32', with_cp=False, batch=2, train_s=0.5, train_img_s=4.0,
                 peak_gib=10.25, infer_img_s=12.0, vit_tflops=123.4),
            dict(arch='g', dtype='bf16', with_cp=True, batch=2, error='OOM'),
            dict(arch='L', dtype='bf16', with_cp=False, batch=2, error='not run (--budget-s 60)')]
    table = benchmark.markdown(rows, 989.0, 'NVIDIA H200, torch 2.11.0')
    lines = table.splitlines()
    assert lines[0] == 'Device: NVIDIA H200, torch 2.11.0'
    assert '| S | fp32 | off | 2 | 0.500 | 4.00 | 10.2 | 12.00 | 123 | 12% |' in lines
    assert lines[-2].startswith('| g | bf16 | on | 2 | OOM |')
    assert 'not run' in lines[-1]
    assert all(line.count('|') == lines[2].count('|') for line in lines[2:])


def test_needed_skips_what_is_installed_at_that_version_or_newer(tmp_path):
    import pytest as installed
    (tmp_path / 'MANIFEST').write_text(
        '# python 3.12\n'
        f'pytest 0.1 {"0" * 64} pytest-0.1-py3-none-any.whl\n'          # older than ours: kept
        f'pytest 999.0 {"0" * 64} pytest-999.0-py3-none-any.whl\n'      # newer: installed
        f'tinybeta 2.1 {"0" * 64} tinybeta-2.1-py3-none-any.whl\n'      # absent: installed
        f'onedl-mmcv 2.3.6 {"0" * 64} onedl_mmcv-2.3.6.tar.gz\n')       # built, not pip-installed
    assert installed.__version__ < '999'
    assert [Path(p).name for p in wheelhouse.needed(tmp_path)] == ['pytest-999.0-py3-none-any.whl',
                                                                   'tinybeta-2.1-py3-none-any.whl']


def test_the_manifest_covers_prebuilt_wheels_which_only_install_offline_chooses(local_index):
    wh = local_index['out']
    (wh / 'prebuilt' / 'torch-2.11.0_cu130-cp312-cu130-sm90-trim-x').mkdir(parents=True)
    fake_wheel(wh, 'tinybeta', '2.1')
    prebuilt = fake_wheel(wh / 'prebuilt' / 'torch-2.11.0_cu130-cp312-cu130-sm90-trim-x', 'tinyzeta', '1.0')
    wheelhouse.write_manifest(wh, '3.12')
    rows = wheelhouse.read_manifest(wh)
    assert [r[3] for r in rows] == ['tinybeta-2.1-py3-none-any.whl',
                                    'prebuilt/torch-2.11.0_cu130-cp312-cu130-sm90-trim-x/tinyzeta-1.0-py3-none-any.whl']
    assert wheelhouse.verify(wh) == []
    prebuilt.write_bytes(prebuilt.read_bytes() + b'x')
    assert any('tinyzeta' in p and 'sha256' in p for p in wheelhouse.verify(wh))
    assert [Path(p).name for p in wheelhouse.needed(wh)] == ['tinybeta-2.1-py3-none-any.whl']
