#!/usr/bin/env bash
# Install this project, with no network, into a Python that already holds torch (>= 2.8; a CUDA
# build on a GPU node), from a folder made by tools/gpu/make_wheelhouse.sh:
#   1. check the wheelhouse against its MANIFEST (sha256);
#   2. pip install --no-index its wheels, --no-deps so torch is never replaced (a requirement on
#      opencv-python is met by the node's opencv-python-headless: same cv2);
#   3. onedl-mmcv with compiled ops, trimmed to the ops of tools/lib/mmcv_ops.txt (MMCV_FULL_BUILD=1:
#      all): the wheel make_wheelhouse.sh cross-built (WHEELHOUSE/prebuilt/KEY/) when KEY (torch,
#      Python, CUDA, architecture, trim) is this node's; else built from the source archive, CUDA
#      ops for the local GPU's architecture only (TORCH_CUDA_ARCH_LIST from
#      torch.cuda.get_device_capability()), MAX_JOBS = cores, and cached under the same key, so a
#      second install compiles nothing;
#   4. install this package (editable, --no-deps) and check that mmcv.ops imports and runs its
#      ops on the GPU (with --cpu or without CUDA: on the CPU).
#
# usage: tools/gpu/install_offline.sh WHEELHOUSE [--python PY] [--cpu] [--arch X.Y] [--cache DIR]
#                                     [--jobs N] [--dry-run]
#   --python PY   the interpreter to install into (default: python3 on PATH)
#   --cpu         build mmcv's CPU ops only (automatic when torch sees no CUDA device)
#   --arch X.Y    CUDA ops for compute capability X.Y even where torch sees no GPU (a CPU rehearsal of
#                 the node's install: make offline-check); the check then runs the CPU ops only
#   --cache DIR   built-wheel cache (default ${MMDET_DINOV2_CACHE:-~/.cache/mmdet-dinov2}/wheels,
#                 the cache tools/setup_env.sh uses too)
#   --dry-run     print the plan (cache key, build settings, packages) and change nothing
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WH=""
PY=python3
MODE=auto
CACHE=${MMDET_DINOV2_CACHE:-$HOME/.cache/mmdet-dinov2}/wheels
JOBS=$(nproc)
FORCE_ARCH=""
DRY_RUN=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --python) PY=$2; shift 2 ;;
        --cpu) MODE=cpu; shift ;;
        --arch) FORCE_ARCH=$2; shift 2 ;;
        --cache) CACHE=$2; shift 2 ;;
        --jobs) JOBS=$2; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "!! unknown option '$1' (see --help)" >&2; exit 2 ;;
        *) [[ -z "$WH" ]] || { echo "!! one WHEELHOUSE only (got '$WH' and '$1')" >&2; exit 2; }
           WH=$1; shift ;;
    esac
done
[[ -n "$WH" ]] || { echo "usage: $0 WHEELHOUSE [--python PY] [--cpu] [--cache DIR] [--jobs N] [--dry-run]" >&2; exit 2; }
[[ -d "$WH" ]] || { echo "!! no folder $WH (make it with tools/gpu/make_wheelhouse.sh)" >&2; exit 2; }
WH=$(cd "$WH" && pwd)
[[ -f "$WH/MANIFEST" ]] || { echo "!! $WH has no MANIFEST: make it with tools/gpu/make_wheelhouse.sh" >&2; exit 2; }
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "!! --jobs takes a positive number (got '$JOBS')" >&2; exit 2; }
[[ -z "$FORCE_ARCH" || "$FORCE_ARCH" =~ ^[0-9]+\.[0-9]+$ ]] || { echo "!! --arch takes a compute capability X.Y, e.g. 9.0 (got '$FORCE_ARCH')" >&2; exit 2; }

T0=$(date +%s)
# shellcheck source=tools/lib/setup_helpers.sh
source "$ROOT/tools/lib/setup_helpers.sh"
setup_traps install  # any failure names its step; the exit trap stops a background build

step "the target Python and its torch"
command -v "$PY" >/dev/null || { echo "!! no interpreter '$PY' (--python)" >&2; exit 2; }
# torch version, Python tag, CUDA tag, architecture (e.g. 9.0 / sm90), pip's site
read -r TORCH_VER PY_TAG CUDA_TAG ARCH SM HAS_CUDA_HOME < <("$PY" - "$MODE" "$FORCE_ARCH" 2>/dev/null <<'PYEOF' || echo "FAIL"
import sys
try:
    import torch
except ImportError:
    print('MISSING'); sys.exit()
from torch.utils.cpp_extension import CUDA_HOME
version = torch.__version__.split('+')[0]
major, minor = (int(x) for x in version.split('.')[:2])
if (major, minor) < (2, 8):
    print('OLD', torch.__version__); sys.exit()
cuda = 'cpu'
arch = sm = '-'
forced = sys.argv[2] if len(sys.argv) > 2 else ''
if sys.argv[1] != 'cpu' and torch.version.cuda and (forced or torch.cuda.is_available()):
    cuda = 'cu' + torch.version.cuda.replace('.', '')
    cap = tuple(map(int, forced.split('.'))) if forced else torch.cuda.get_device_capability()
    arch, sm = f'{cap[0]}.{cap[1]}', f'sm{cap[0]}{cap[1]}'
print(torch.__version__.replace('+', '_'), f'cp{sys.version_info.major}{sys.version_info.minor}',
      cuda, arch, sm, 'yes' if CUDA_HOME else 'no')
PYEOF
)
case "$TORCH_VER" in
    MISSING) echo "!! $PY has no torch: install the node's CUDA build of torch (>= 2.8) first; this script never installs torch" >&2; exit 1 ;;
    OLD) echo "!! $PY has torch $PY_TAG; >= 2.8 is needed (this script never replaces torch)" >&2; exit 1 ;;
    FAIL|"") echo "!! could not inspect torch in $PY" >&2; exit 1 ;;
esac
WH_PY=$(sed -n 's/^# python \([0-9.]*\).*/\1/p' "$WH/MANIFEST")
if [[ -n "$WH_PY" && "cp${WH_PY/./}" != "$PY_TAG" ]]; then
    echo "!! $WH was made for Python $WH_PY; $PY is $PY_TAG: tools/gpu/make_wheelhouse.sh --python ${PY_TAG:2:1}.${PY_TAG:3}" >&2
    exit 1
fi
BUILD_KIND=$(mmcv_build_kind "$PY")  # trim-<hash> or full (MMCV_FULL_BUILD=1)
KEY=torch-$TORCH_VER-$PY_TAG-$CUDA_TAG
[[ "$CUDA_TAG" != cpu ]] && KEY=$KEY-$SM
KEY=$KEY-$BUILD_KIND
SDIST=$(ls "$WH"/onedl_mmcv-*.tar.gz 2>/dev/null | head -1)
[[ -n "$SDIST" ]] || { echo "!! $WH has no onedl_mmcv-*.tar.gz" >&2; exit 1; }
MMCV_VERSION=$(basename "$SDIST" .tar.gz); MMCV_VERSION=${MMCV_VERSION#onedl_mmcv-}
WHEEL_DIR=$CACHE/onedl-mmcv-$MMCV_VERSION/$KEY
PREBUILT=""
if compgen -G "$WH/prebuilt/$KEY/onedl_mmcv-$MMCV_VERSION-*.whl" >/dev/null; then
    PREBUILT=$WH/prebuilt/$KEY  # cross-built by make_wheelhouse.sh for exactly this node
    WHEEL_DIR=$PREBUILT
elif [[ "$CUDA_TAG" != cpu && "$HAS_CUDA_HOME" != yes ]]; then
    echo "!! torch $TORCH_VER has CUDA but there is no CUDA toolkit (nvcc) to build mmcv's ops, and $WH" \
         "holds no wheel built for $KEY (prebuilt/: $(ls "$WH/prebuilt" 2>/dev/null | tr '\n' ' '))." \
         "Set CUDA_HOME (e.g. /usr/local/cuda), make the wheelhouse for this node" \
         "(make_wheelhouse.sh --torch/--cuda/--arch), or --cpu for CPU ops only" >&2
    exit 1
fi
mapfile -t WHEELS < <(ls "$WH"/*.whl)
echo "    python $("$PY" -c 'import sys; print(sys.executable)') ($PY_TAG), torch $TORCH_VER, ops: $CUDA_TAG${ARCH/-/}"
if [[ -n "$PREBUILT" ]]; then
    echo "    mmcv $MMCV_VERSION: the wheelhouse's cross-built wheel for $KEY: nothing to compile"
else
    echo "    mmcv $MMCV_VERSION wheel cache: $WHEEL_DIR ($(compgen -G "$WHEEL_DIR/*.whl" >/dev/null && echo 'hit: nothing to compile' || echo 'miss: compile'))"
    [[ -d "$WH/prebuilt" ]] && echo "    (the wheelhouse's prebuilt wheels are for $(ls "$WH/prebuilt" | tr '\n' ' '), not $KEY)"
fi
echo "    build: MAX_JOBS=$JOBS$([[ "$CUDA_TAG" != cpu ]] && echo " FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=$ARCH" || echo ' FORCE_CUDA=0 (CPU ops)')"
echo "    wheels (${#WHEELS[@]}): $(for w in "${WHEELS[@]}"; do basename "$w"; done | tr '\n' ' ')"
if [[ "$DRY_RUN" == 1 ]]; then
    echo "    dry run: nothing installed"
    exit 0
fi
done_step

# --isolated: no pip configuration (no index mirror, no find-links) reaches this install.
PIP=("$PY" -m pip --isolated --disable-pip-version-check)

step "verify the wheelhouse against its MANIFEST"
"$PY" "$HERE/wheelhouse.py" verify "$WH"
done_step

step "install the wheelhouse (no index, no dependencies: torch stays $TORCH_VER)"
# only what the interpreter lacks or has older: a node's newer setuptools or platformdirs stays
mapfile -t NEEDED < <("$PY" "$HERE/wheelhouse.py" needed "$WH")
if [[ ${#NEEDED[@]} -gt 0 && -n "${NEEDED[0]}" ]]; then
    echo "    ${#NEEDED[@]} of ${#WHEELS[@]} wheels to install"
    "${PIP[@]}" install -q --no-index --no-deps --find-links "$WH" "${NEEDED[@]}"
else
    echo "    all ${#WHEELS[@]} already installed"
fi
# pip check, less the one requirement the headless OpenCV meets under another name; only the
# wheelhouse's own packages count (the node's other packages are not ours to judge).
if "${PIP[@]}" check 2>&1 | grep -v 'requires opencv-python,' \
        | awk -v names="$(awk '!/^#/{print $1}' "$WH/MANIFEST")" '
            BEGIN { split(names, a, " "); for (i in a) ours[a[i]] = 1 }
            { k = tolower($1); gsub(/[_.]/, "-", k); if (k in ours) { print; bad = 1 } }
            END { exit !bad }' >&2; then
    echo "!! a wheelhouse package lacks a requirement (above): add it to tools/gpu/wheelhouse.txt" >&2; exit 1
fi
"$PY" -c 'import cv2' 2>/dev/null || { echo "!! no cv2 in $PY: the node should have opencv-python-headless" >&2; exit 1; }
done_step

step "onedl-mmcv $MMCV_VERSION with compiled ops ($KEY)"
if compgen -G "$WHEEL_DIR/*.whl" >/dev/null; then
    echo "    $([[ -n "$PREBUILT" ]] && echo 'cross-built' || echo 'cached'): $(ls "$WHEEL_DIR"/*.whl)"
else
    MAX_JOBS=$JOBS
    # the wrapper, progress and clean-up of tools/setup_env.sh (tools/lib/setup_helpers.sh)
    build_mmcv_wheel "$PY" "$SDIST" "$WHEEL_DIR" "$CACHE/build-mmcv-$KEY.log" "$CUDA_TAG" "$ARCH" \
        --no-index --isolated
fi
"${PIP[@]}" install -q --no-index --no-deps --force-reinstall "$WHEEL_DIR"/*.whl
done_step

step "install mmdet_dinov2 (editable, no dependencies)"
"${PIP[@]}" install -q --no-index --no-deps --no-build-isolation -e "$ROOT"
done_step

step "check: mmcv.ops runs$([[ "$CUDA_TAG" != cpu && -z "$FORCE_ARCH" ]] && echo ' on the GPU' || echo ' on the CPU')"
"$PY" - "$CUDA_TAG" "$TORCH_VER" <<'PYEOF' 2>&1 | grep -v 'Could not import OneDL'
import sys
import torch
import mmcv, mmengine, mmdet, mmdet_dinov2  # noqa: F401
from mmcv.ops import nms, roi_align
assert torch.__version__.replace('+', '_') == sys.argv[2], f'torch changed: {torch.__version__}'
device = 'cuda' if sys.argv[1] != 'cpu' and torch.cuda.is_available() else 'cpu'
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]], device=device)
scores = torch.tensor([0.9, 0.8, 0.7], device=device)
_, keep = nms(boxes, scores, iou_threshold=0.5)
assert keep.tolist() == [0, 2], keep
feat = torch.arange(64., device=device).reshape(1, 1, 8, 8)
rois = torch.tensor([[0., 0., 0., 7., 7.]], device=device)
out = roi_align(feat, rois, (2, 2), 1.0, 2, 'avg', True)
assert out.shape == (1, 1, 2, 2) and torch.isfinite(out).all()
msg = f'nms and roi_align ran on {device}'
if sys.argv[1] != 'cpu' and device == 'cpu':  # a CUDA build rehearsed without a GPU (--arch)
    from mmcv import _ext
    assert _ext.get_compiling_cuda_version() == torch.version.cuda, _ext.get_compiling_cuda_version()
    value = torch.zeros(1, 4, 1, 2)
    try:
        _ext.ms_deform_attn_forward(value, torch.tensor([[2, 2]]), torch.tensor([0]),
                                    torch.zeros(1, 1, 1, 1, 1, 2), torch.ones(1, 1, 1, 1, 1), im2col_step=1)
        raise AssertionError('ms_deform_attn_forward ran on the CPU: not the CUDA-only kernel')
    except RuntimeError as e:
        assert 'implementation for device cpu not found' in str(e), e
    msg += (f'; CUDA {_ext.get_compiling_cuda_version()} ops compiled in, and a CUDA-only op on CPU '
            'tensors refuses ("ms_deform_attn_impl_forward: implementation for device cpu not found")')
if device == 'cuda':
    from mmcv.ops.multi_scale_deform_attn import (MultiScaleDeformableAttnFunction,
                                                  multi_scale_deformable_attn_pytorch)
    shapes = torch.tensor([[8, 8], [4, 4]], device=device)
    start = torch.cat((shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]))
    g = torch.Generator(device).manual_seed(0)
    value = torch.rand(1, 80, 2, 8, device=device, generator=g)
    loc = torch.rand(1, 5, 2, 2, 4, 2, device=device, generator=g)
    attn = torch.rand(1, 5, 2, 2, 4, device=device, generator=g).softmax(-1)
    got = MultiScaleDeformableAttnFunction.apply(value, shapes, start, loc, attn, 64)
    ref = multi_scale_deformable_attn_pytorch(value, shapes, loc, attn)
    assert torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()
    msg += ', multi-scale deformable attention matches its PyTorch form'
print(f'    mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, '
      f'torch {torch.__version__}: {msg}')
PYEOF
done_step
echo "==> [install] finished in $(($(date +%s) - T0)) s"
