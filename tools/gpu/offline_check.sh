#!/usr/bin/env bash
# `make offline-check`: prove, on this CPU machine, that the node's offline install works end to end
# with the wheel it will really get: onedl-mmcv cross-built with CUDA ops.
#   1. make_wheelhouse.sh --cuda-wheel for the node (Python 3.12, torch 2.11.0, CUDA 13.0, sm_90):
#      the wheels, and onedl-mmcv trimmed and compiled here with nvcc (minutes the first time, then
#      cached), its kernels checked for sm_90;
#   2. a venv that looks like the GPU node before the install: Python 3.12, torch 2.11.0 (the CUDA
#      build, which installs without a GPU) and the node's other packages (node_packages.txt), none
#      of the wheelhouse's;
#   3. install_offline.sh --arch 9.0 into it (pip --isolated --no-index: wheelhouse only): it must
#      take the cross-built wheel and compile nothing; its check runs the CPU ops of that wheel and
#      sees a CUDA-only op refuse CPU tensors (GPU execution is left to the device);
#   4. check.sh --cpu with that venv: tests/cuda (skipped without CUDA) and a tiny benchmark.
# OFFLINE_CHECK_CPU_BUILD=1: the previous rehearsal instead: this machine's Python and torch, CPU ops
# compiled by install_offline.sh (cached; OFFLINE_CHECK_FRESH=1 compiles again).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${MMDET_DINOV2_CACHE:-$HOME/.cache/mmdet-dinov2}
WORK=$CACHE/offline-check
HOST_PY=$ROOT/.venv/bin/python
NODE_PY=${OFFLINE_CHECK_PYTHON:-3.12}
NODE_TORCH=${OFFLINE_CHECK_TORCH:-2.11.0}
NODE_ARCH=${OFFLINE_CHECK_ARCH:-9.0}
T0=$(date +%s)

[[ -x "$ROOT/.venv/bin/uv" ]] || { echo "!! needs .venv with uv (make setup)" >&2; exit 1; }
rm -rf "$WORK/wheelhouse" "$WORK/venv"
mkdir -p "$WORK"
[[ "${OFFLINE_CHECK_FRESH:-0}" == 1 ]] && rm -rf "$WORK/wheels"
export UV_CACHE_DIR=${UV_CACHE_DIR:-$CACHE/uv}

# .venv's versions of what the node has (their own dependencies as constraints); nothing the
# wheelhouse brings
node_requirements() {
    "$HOST_PY" -m pip list --format=freeze 2>/dev/null > "$WORK/venv-freeze.txt"
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$HERE/node_packages.txt" | tr 'A-Z_.' 'a-z--' > "$WORK/node-names.txt"
    awk -F'==' 'NR==FNR { keep[$1] = 1; next }
                { n = tolower($1); gsub(/[_.]/, "-", n); if (n in keep) print }' \
        "$WORK/node-names.txt" "$WORK/venv-freeze.txt" > "$WORK/node-base.txt"
}

if [[ "${OFFLINE_CHECK_CPU_BUILD:-0}" == 1 ]]; then
    PY_VER=$("$HOST_PY" -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
    PY=$HOST_PY "$HERE/make_wheelhouse.sh" --python "$PY_VER" --out "$WORK/wheelhouse"
    echo "==> [offline-check] a node-like venv (torch + the node's packages, from uv's cache, offline)"
    t=$(date +%s)
    "$(readlink -f "$HOST_PY")" -m venv "$WORK/venv"
    node_requirements
    "$ROOT/.venv/bin/uv" pip install --offline --quiet --python "$WORK/venv/bin/python" \
        -r "$WORK/node-base.txt" -c "$WORK/venv-freeze.txt"
    echo "    $(wc -l < "$WORK/node-base.txt") packages and their dependencies in $(($(date +%s) - t)) s"
    "$HERE/install_offline.sh" "$WORK/wheelhouse" --python "$WORK/venv/bin/python" --cpu --cache "$WORK/wheels"
else
    PY=$HOST_PY "$HERE/make_wheelhouse.sh" --python "$NODE_PY" --out "$WORK/wheelhouse" --cuda-wheel \
        --torch "$NODE_TORCH" --arch "$NODE_ARCH"
    echo "==> [offline-check] a node-like venv: Python $NODE_PY, torch $NODE_TORCH (CUDA build), the node's packages"
    t=$(date +%s)
    node_py=$(ls "$CACHE/cross-build/py$NODE_PY-torch$NODE_TORCH-"*/bin/python | head -n 1)
    "$(readlink -f "$node_py")" -m venv "$WORK/venv"
    node_requirements
    # torch at the node's version; the others at .venv's versions where this Python has them
    grep -v -E '^(torch|torchvision|triton)==' "$WORK/node-base.txt" | sed 's/==.*//' > "$WORK/node-names-only.txt"
    "$ROOT/.venv/bin/uv" pip install --quiet --python "$WORK/venv/bin/python" "torch==$NODE_TORCH" torchvision \
        -r "$WORK/node-names-only.txt" -c <(grep -v -E '^(torch|torchvision|triton|nvidia-|cuda-|setuptools)' "$WORK/venv-freeze.txt")
    echo "    $(wc -l < "$WORK/node-names-only.txt") packages, torch and their dependencies in $(($(date +%s) - t)) s"
    t=$(date +%s)
    "$HERE/install_offline.sh" "$WORK/wheelhouse" --python "$WORK/venv/bin/python" --arch "$NODE_ARCH" \
        --cache "$WORK/wheels" | tee "$WORK/install.log"
    grep -q "cross-built wheel for" "$WORK/install.log" \
        || { echo "!! install_offline.sh did not take the cross-built wheel" >&2; exit 1; }
    echo "    the node's install from the wheelhouse took $(($(date +%s) - t)) s here (nothing compiled)"
fi
"$HERE/check.sh" --cpu --python "$WORK/venv/bin/python" --wheelhouse "$WORK/wheelhouse" \
    --report "$WORK/gpu_report.md"
echo "==> [offline-check] passed in $(($(date +%s) - T0)) s (report: $WORK/gpu_report.md)"
