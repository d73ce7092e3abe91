"""tools/lib/trim_mmcv.py on a miniature onedl-mmcv source (nothing compiled), and the installed
onedl-mmcv when `make setup` built it trimmed: every listed op compiled, every other one refusing
with an error that names it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import load_tool

ROOT = Path(__file__).resolve().parents[2]
TRIM = ROOT / 'tools' / 'lib' / 'trim_mmcv.py'
OPS = ROOT / 'tools' / 'lib' / 'mmcv_ops.txt'
trim_mmcv = load_tool('tools/lib/trim_mmcv.py')

# The layout and idioms of onedl-mmcv's csrc: pybind.cpp declares and binds every function, each op's
# unit dispatches to device implementations that cpu/*.cpp and sections of cuda/cudabind.cpp
# register, and the CUDA launchers live in cuda/*.cu.
MINI = {
    'pytorch/pybind.cpp': '''#include <torch/extension.h>
#include "pytorch_cpp_helper.hpp"

std::string get_compiler_version();
// a comment with a fake declaration: void not_a_function(int);
Tensor nms(Tensor boxes, Tensor scores, float iou_threshold, int offset);

void roi_pool_forward(Tensor input, Tensor rois, Tensor output,
                      int pooled_height, float spatial_scale);

template <unsigned NDim>
std::vector<torch::Tensor> get_pairs(torch::Tensor indices, int64_t batch);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("get_compiler_version", &get_compiler_version, "get_compiler_version");
  m.def("nms", &nms, "nms (CPU/CUDA) ", py::arg("boxes"));
  m.def("roi_pool_forward", &roi_pool_forward, "roi_pool forward");
  m.def("get_pairs_2d", &get_pairs<2>, "pairs");
  m.def("get_pairs_3d", &get_pairs<3>, "pairs");
}
''',
    'pytorch/info.cpp': 'std::string get_compiler_version() { return "x"; }\n',
    'pytorch/nms.cpp': '''#include "pytorch_device_registry.hpp"
Tensor nms_impl(Tensor boxes, Tensor scores, float iou_threshold, int offset) {
  return DISPATCH_DEVICE_IMPL(nms_impl, boxes, scores, iou_threshold, offset);
}
Tensor nms(Tensor boxes, Tensor scores, float iou_threshold, int offset) {
  return nms_impl(boxes, scores, iou_threshold, offset);
}
''',
    'pytorch/roi_pool.cpp': '''void roi_pool_forward_impl(Tensor input) {
    DISPATCH_DEVICE_IMPL(roi_pool_forward_impl, input); }
void roi_pool_forward(Tensor input, Tensor rois, Tensor output, int pooled_height,
                      float spatial_scale) { roi_pool_forward_impl(input); }
''',
    'pytorch/spconv_ops.cpp': '''template <unsigned NDim>
std::vector<torch::Tensor> get_pairs(torch::Tensor indices, int64_t batch) { return {}; }
''',
    'pytorch/cpu/nms.cpp': '''static int helper(int x) { return x; }
Tensor nms_cpu(Tensor boxes, Tensor scores, float iou_threshold, int offset) { helper(1); return boxes; }
Tensor nms_impl(Tensor boxes, Tensor scores, float iou_threshold, int offset);
REGISTER_DEVICE_IMPL(nms_impl, CPU, nms_cpu);
''',
    'pytorch/cpu/roi_pool.cpp': '''static int helper(int x) { return x + 1; }
void roi_pool_forward_cpu(Tensor input) { helper(2); }
void roi_pool_forward_impl(Tensor input);
REGISTER_DEVICE_IMPL(roi_pool_forward_impl, CPU, roi_pool_forward_cpu);
''',
    'pytorch/cuda/cudabind.cpp': '''#include "pytorch_cpp_helper.hpp"
#include "pytorch_device_registry.hpp"

Tensor NMSCUDAKernelLauncher(Tensor boxes, Tensor scores, float iou_threshold,
                             int offset);

Tensor nms_cuda(Tensor boxes, Tensor scores, float iou_threshold, int offset) {
  return NMSCUDAKernelLauncher(boxes, scores, iou_threshold, offset);
}

Tensor nms_impl(Tensor boxes, Tensor scores, float iou_threshold, int offset);
REGISTER_DEVICE_IMPL(nms_impl, CUDA,
                     nms_cuda);

void RoIPoolForwardCUDAKernelLauncher(Tensor input);
void roi_pool_forward_cuda(Tensor input) { RoIPoolForwardCUDAKernelLauncher(input); }
void roi_pool_forward_impl(Tensor input);
REGISTER_DEVICE_IMPL(roi_pool_forward_impl, CUDA, roi_pool_forward_cuda);
''',
    'pytorch/cuda/nms_cuda.cu': '''template <typename T>
__global__ void nms_kernel(const T *boxes) {}
Tensor NMSCUDAKernelLauncher(Tensor boxes, Tensor scores, float iou_threshold, int offset) {
  return boxes;
}
''',
    'pytorch/cuda/roi_pool_cuda.cu': 'void RoIPoolForwardCUDAKernelLauncher(Tensor input) {}\n',
}


@pytest.fixture
def mini_source(tmp_path):
    root = tmp_path / 'onedl_mmcv-9.9.9'
    for rel, text in MINI.items():
        path = root / 'mmcv' / 'ops' / 'csrc' / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    ops = tmp_path / 'ops.txt'
    ops.write_text('# the ops\nnms  # recorded\n')
    return root, ops


def run_trim(*args):
    return subprocess.run([sys.executable, str(TRIM), *map(str, args)], capture_output=True, text=True,
                          timeout=60)


def test_trim_keeps_the_units_an_op_needs_and_binds_the_rest_to_an_error(mini_source):
    root, ops = mini_source
    done = run_trim('trim', root, '--ops', ops)
    assert done.returncode == 0, done.stderr
    csrc = root / 'mmcv' / 'ops' / 'csrc' / 'pytorch'
    left = sorted(str(p.relative_to(csrc)) for p in csrc.rglob('*') if p.is_file())
    # the kept C++ units moved out of setup.py's globs (pytorch/*.cpp, pytorch/cpu/*.cpp), into one
    assert left == ['cuda/cudabind.cpp', 'cuda/nms_cuda.cu', 'pybind.cpp', 'trimmed/cpu/nms.cpp',
                    'trimmed/info.cpp', 'trimmed/nms.cpp', 'trimmed_ops.cpp']
    assert (csrc / 'trimmed' / 'nms.cpp').read_text() == MINI['pytorch/nms.cpp']
    includes = [line for line in (csrc / 'trimmed_ops.cpp').read_text().splitlines() if line.startswith('#')]
    assert includes == ['#include "trimmed/cpu/nms.cpp"', '#include "trimmed/info.cpp"',
                        '#include "trimmed/nms.cpp"']
    cudabind = (csrc / 'cuda' / 'cudabind.cpp').read_text()
    assert cudabind.startswith('#include "pytorch_cpp_helper.hpp"')
    assert 'REGISTER_DEVICE_IMPL(nms_impl, CUDA,\n                     nms_cuda);' in cudabind
    assert 'roi_pool' not in cudabind
    pybind = (csrc / 'pybind.cpp').read_text()
    assert pybind.startswith('#include <torch/python.h>\n')  # not all of <torch/extension.h>
    module = pybind[pybind.index('PYBIND11_MODULE'):]
    # the kept bindings as they were; those of the ops left out gone (templates' instantiations too)
    assert ('PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {\n  mmdet_dinov2_describe_trim(m);\n'
            '  m.def("get_compiler_version", &get_compiler_version, "get_compiler_version");\n'
            '  m.def("nms", &nms, "nms (CPU/CUDA) ", py::arg("boxes"));\n}\n') == module
    # ... and bound by name to one function raising an error that names the op
    listed = pybind[pybind.index('stubbed[] = {'):pybind.index('};')]
    assert [n.strip(' \n"') for n in listed.split('{')[1].split(',')] == [
        'get_pairs_2d', 'get_pairs_3d', 'roi_pool_forward']
    assert 'm.def(name, [name](py::args, py::kwargs) { mmdet_dinov2_not_compiled(name); });' in pybind
    assert 'MMCV_FULL_BUILD=1 make setup' in pybind and 'PyExc_NotImplementedError' in pybind
    key = run_trim('key', '--ops', ops).stdout.strip()
    assert f'm.attr("_mmdet_dinov2_trim") = "{key}";' in pybind
    assert (f'({key}): 2 C++ units (pybind.cpp, trimmed_ops.cpp: cpu/nms.cpp + pytorch/info.cpp + '
            'pytorch/nms.cpp; 3 ops left out, bound to an error), and for CUDA builds 1 CUDA units '
            '(cuda/nms_cuda.cu)') in done.stdout


def test_trim_keeps_units_apart_that_define_one_name(mini_source):
    """Two kept units with a static helper of one name would not compile as one unit."""
    root, ops = mini_source
    ops.write_text('nms\nroi_pool_forward\n')
    done = run_trim('trim', root, '--ops', ops)
    assert done.returncode == 0, done.stderr
    csrc = root / 'mmcv' / 'ops' / 'csrc' / 'pytorch'
    assert not (csrc / 'trimmed_ops.cpp').exists() and not (csrc / 'trimmed').exists()
    assert (csrc / 'cpu' / 'nms.cpp').exists() and (csrc / 'cpu' / 'roi_pool.cpp').exists()
    assert ('6 C++ units (pybind.cpp, cpu/nms.cpp, cpu/roi_pool.cpp, pytorch/info.cpp, pytorch/nms.cpp, '
            'pytorch/roi_pool.cpp;') in done.stdout


def test_trim_refuses_a_binding_it_cannot_remove(mini_source):
    root, ops = mini_source
    pybind = root / 'mmcv' / 'ops' / 'csrc' / 'pytorch' / 'pybind.cpp'
    pybind.write_text(pybind.read_text().replace(
        '  m.def("get_pairs_3d"', '  auto f = &roi_pool_forward;\n  m.def("get_pairs_3d"'))
    done = run_trim('trim', root, '--ops', ops)
    assert done.returncode == 1 and "still refers to ['roi_pool_forward']" in done.stderr


def test_trim_refuses_a_name_mmcv_does_not_have_and_a_second_trim(mini_source):
    root, ops = mini_source
    ops.write_text('nms\nno_such_op\n')
    done = run_trim('trim', root, '--ops', ops)
    assert done.returncode == 1 and 'no_such_op' in done.stderr and 'not a function of mmcv._ext' in done.stderr
    ops.write_text('nms\n')
    assert run_trim('trim', root, '--ops', ops).returncode == 0
    again = run_trim('trim', root, '--ops', ops)
    assert again.returncode == 1 and 'trimmed already' in again.stderr


def test_the_key_follows_the_list(tmp_path):
    a, b = tmp_path / 'a.txt', tmp_path / 'b.txt'
    a.write_text('nms\nroi_align_forward\n')
    b.write_text('roi_align_forward  # a comment\n\nnms\n')
    key_a, key_b = (run_trim('key', '--ops', p).stdout.strip() for p in (a, b))
    assert key_a.startswith('trim-') and key_a == key_b  # the same set of ops
    b.write_text('nms\n')
    assert run_trim('key', '--ops', b).stdout.strip() != key_a


def test_the_ops_list_names_the_detectors_ops():
    ops = trim_mmcv.read_ops(OPS)
    for op in ('nms', 'roi_align_forward', 'roi_align_backward', 'ms_deform_attn_forward',
               'ms_deform_attn_backward', 'sigmoid_focal_loss_forward', 'sigmoid_focal_loss_backward'):
        assert op in ops
    assert OPS.read_text().startswith('#') and 'record_mmcv_ops.py' in OPS.read_text()


# --- the onedl-mmcv that `make setup` installed --------------------------------------------------

def installed_build():
    """The cache entry .venv's onedl-mmcv came from (tools/setup_env.sh writes it), or ''."""
    record = Path(sys.prefix) / '.mmcv-build'
    return record.read_text().strip() if record.exists() else ''


needs_trimmed = pytest.mark.skipif(
    '-trim-' not in installed_build(),
    reason='this Python\'s onedl-mmcv is not a trimmed build of make setup (MMCV_FULL_BUILD=1, or '
           'installed otherwise)')


@needs_trimmed
def test_every_listed_op_is_compiled_and_every_other_one_names_itself():
    import mmcv.ops  # noqa: F401  (ext_loader asserts every name it binds)
    from mmcv import _ext
    assert installed_build().endswith(_ext._mmdet_dinov2_trim)
    ops = trim_mmcv.read_ops(OPS)
    stubbed = set(_ext._mmdet_dinov2_stubbed)
    assert not stubbed & set(ops)
    assert all(callable(getattr(_ext, op)) for op in ops)
    assert len(stubbed) > 50  # the 3D, rotated-box and point-cloud ops
    with pytest.raises(NotImplementedError, match=r"mmcv op 'tin_shift_forward' is not compiled in "
                                                  r".*trimmed.*MMCV_FULL_BUILD=1"):
        _ext.tin_shift_forward(torch.zeros(1), torch.zeros(1), torch.zeros(1))


@needs_trimmed
def test_the_trimmed_ops_run_on_cpu_as_torchvisions():
    import torchvision
    from mmcv.ops import nms, roi_align
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=g) * 100
    boxes = torch.cat([xy, xy + torch.rand(200, 2, generator=g) * 30 + 1], 1)
    scores = torch.rand(200, generator=g)
    assert torch.equal(nms(boxes, scores, 0.5)[1], torchvision.ops.nms(boxes, scores, 0.5))
    feats = torch.randn(1, 4, 16, 16, generator=g)
    rois = torch.tensor([[0., 1., 1., 9., 12.], [0., 0., 0., 15., 15.]])
    torch.testing.assert_close(roi_align(feats, rois, (3, 3), 1.0, 2, 'avg', True),
                               torchvision.ops.roi_align(feats, rois, (3, 3), 1.0, 2, aligned=True))
    # a CUDA-only implementation on a CPU tensor: mmcv's own refusal, naming the op and the device
    from mmcv import _ext
    with pytest.raises(RuntimeError, match='sigmoid_focal_loss_forward_impl: implementation for device cpu'):
        _ext.sigmoid_focal_loss_forward(torch.rand(2, 3), torch.tensor([0, 1]), torch.empty(0),
                                        torch.zeros(2, 3), gamma=2.0, alpha=0.25)


def test_setup_records_the_build_kind_in_the_cache_key():
    text = (ROOT / 'tools' / 'setup_env.sh').read_text()
    assert 'BUILD_KIND=$(mmcv_build_kind "$PY")' in text and '-$BUILD_KIND"' in text
    env = dict(os.environ, MMCV_FULL_BUILD='1')
    full = subprocess.run(['bash', '-c', f'source {ROOT}/tools/lib/setup_helpers.sh; mmcv_build_kind {sys.executable}'],
                          capture_output=True, text=True, env=env, timeout=60)
    assert full.stdout.strip() == 'full'
    env['MMCV_FULL_BUILD'] = '0'
    trim = subprocess.run(['bash', '-c', f'source {ROOT}/tools/lib/setup_helpers.sh; mmcv_build_kind {sys.executable}'],
                          capture_output=True, text=True, env=env, timeout=60)
    assert trim.stdout.strip() == run_trim('key').stdout.strip() and trim.stdout.startswith('trim-')


FAKE_PY = '''#!/usr/bin/env bash
# python for build_mmcv_wheel: `-m pip wheel ... -w DIR SRC` notes whether SRC was trimmed and writes
# a wheel; anything else runs the real interpreter
if [[ "$1 $2 $3" == "-m pip wheel" ]]; then
    out=""; prev=""
    for a in "$@"; do [[ "$prev" == -w ]] && out=$a; prev=$a; done
    src=${@: -1}
    mkdir -p "$out"
    if grep -q mmdet_dinov2_describe_trim "$src/mmcv/ops/csrc/pytorch/pybind.cpp"; then kind=trimmed; else kind=full; fi
    echo "$kind $(ls "$src/mmcv/ops/csrc/pytorch" | tr '\\n' ' ')" > "$out/onedl_mmcv-9.9.9-py3-none-any.whl"
    exit 0
fi
exec {real} "$@"
'''


@pytest.mark.parametrize('full', ['0', '1'])
def test_build_mmcv_wheel_builds_the_trimmed_source_unless_asked_for_all(mini_source, tmp_path, full):
    root, ops = mini_source
    (root / 'setup.py').write_text('')
    sdist = tmp_path / 'onedl_mmcv-9.9.9.tar.gz'
    subprocess.run(['tar', '-czf', str(sdist), '-C', str(root.parent), root.name], check=True)
    py = tmp_path / 'python'
    py.write_text(FAKE_PY.replace('{real}', sys.executable))
    py.chmod(0o755)
    # the list of the mini source, in a copy of tools/lib (trim_mmcv.py reads its own folder's list)
    lib = tmp_path / 'repo' / 'tools' / 'lib'
    lib.mkdir(parents=True)
    for name in ('setup_helpers.sh', 'trim_mmcv.py', 'mmcv_cxx.sh'):
        (lib / name).write_bytes((ROOT / 'tools' / 'lib' / name).read_bytes())
    (lib / 'mmcv_ops.txt').write_text(ops.read_text())
    done = subprocess.run(['bash', '-c', f'set -euo pipefail; source {lib}/setup_helpers.sh; setup_traps test; '
                           f'build_mmcv_wheel {py} {sdist} {tmp_path}/wheels/k {tmp_path}/build.log cpu -'],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, MMCV_FULL_BUILD=full, BUILD_PROGRESS_INTERVAL='0.2'))
    assert done.returncode == 0, done.stdout + done.stderr
    built = (tmp_path / 'wheels' / 'k' / 'onedl_mmcv-9.9.9-py3-none-any.whl').read_text()
    if full == '1':
        assert built.startswith('full ') and 'roi_pool.cpp' in built and 'every op' in done.stdout
    else:
        assert built.startswith('trimmed ') and 'roi_pool.cpp' not in built and 'trimmed (trim-' in done.stdout
    assert not list((tmp_path / 'wheels').glob('build.*'))  # the build folder is gone
