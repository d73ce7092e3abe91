#!/usr/bin/env bash
# Create or refresh .venv with the whole stack: torch, onedl-mmcv built with its compiled ops
# (cached per torch/Python/CUDA), mmengine, mmdet, timm, pycocotools and this package (editable).
#
# Variables:
#   PYTHON=python3.11     interpreter for a new .venv
#   TORCH=install|keep    keep: do not touch torch/torchvision (install your CUDA build into .venv first,
#                         or create .venv with VENV_SYSTEM_SITE=1 to see a cluster-wide torch);
#                         remembered in .venv/.torch-mode for later runs (TORCH=install resets it)
#   VENV_SYSTEM_SITE=1    create .venv with --system-site-packages
#   MMDET_DINOV2_CACHE    wheel cache root (default ~/.cache/mmdet-dinov2)
#   FORCE_CUDA=1          build mmcv's CUDA ops even when no GPU is visible (needs nvcc)
#   MAX_JOBS=N            parallel compile jobs for the mmcv build (default: number of cores)
#
# Packages are installed with uv (from PyPI, pinned in requirements.txt) whose cache, under the same
# root, hard-links them into a new .venv: a second setup installs torch in seconds instead of minutes.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=tools/lib/setup_helpers.sh
source "$ROOT/tools/lib/setup_helpers.sh"
VENV="$ROOT/.venv"
PYTHON=${PYTHON:-python3.11}
TORCH=$(torch_mode "$VENV")  # TORCH=keep is remembered in .venv/.torch-mode (tools/lib)
CACHE=${MMDET_DINOV2_CACHE:-$HOME/.cache/mmdet-dinov2}
MMCV_VERSION=2.3.6
PIP_QUIET=${PIP_QUIET:--q}

STEP=""
STEP_HINT=""
STEP_T0=0
T0=$(date +%s)

step() {  # step NAME HINT
    STEP=$1
    STEP_HINT=$2
    STEP_T0=$(date +%s)
    echo "==> [setup] $STEP"
}
done_step() {
    echo "    done in $(($(date +%s) - STEP_T0)) s"
}
on_error() {
    local rc=$?
    echo "" >&2
    echo "!! setup failed in step: $STEP (exit $rc)" >&2
    echo "!! what to try: $STEP_HINT" >&2
    exit "$rc"
}
trap on_error ERR

# pip, with the noise of this machine's local index mirrors ("... is ignored: it is neither a file
# nor a directory") filtered out of stderr.
pip_quiet() {
    "$@" 2> >(grep -v 'is neither a file nor a directory' >&2)
}

step "create virtual environment .venv" \
    "check that '$PYTHON' exists (set PYTHON=/path/to/python3.11) and that the disk has room; rm -rf .venv and retry"
if [[ ! -x "$VENV/bin/python" ]]; then
    venv_args=()
    [[ "${VENV_SYSTEM_SITE:-0}" == 1 ]] && venv_args+=(--system-site-packages)
    "$PYTHON" -m venv "${venv_args[@]}" "$VENV"
fi
PY="$VENV/bin/python"
PIP=(pip_quiet "$PY" -m pip --disable-pip-version-check)
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
    || { echo "!! .venv has $("$PY" --version); Python >= 3.11 is needed: rm -rf .venv; PYTHON=python3.11 make setup" >&2; exit 1; }
done_step

step "install build tools (uv, setuptools, wheel)" \
    "check access to the package registry (pip config list); the pins are in requirements.txt"
"${PIP[@]}" install $PIP_QUIET "$(grep -E '^uv==' requirements.txt)"
export UV_CACHE_DIR=${UV_CACHE_DIR:-$CACHE/uv}
UV=("$VENV/bin/uv" pip install --quiet --python "$PY")
"${UV[@]}" "$(grep -E '^setuptools==' requirements.txt)" "$(grep -E '^wheel==' requirements.txt)"
done_step

step "install torch and torchvision" \
    "TORCH=install installs the pins of requirements.txt; with a CUDA cluster build of your own, install it into .venv first and run with TORCH=keep"
if [[ "$TORCH" == keep ]]; then
    "$PY" -c 'import torch, torchvision' 2>/dev/null || {
        echo "!! TORCH=keep but .venv has no importable torch/torchvision." >&2
        echo "!! install yours first, e.g. .venv/bin/pip install torch torchvision --index-url https://download.pytorch.org/whl/cu128" >&2
        false
    }
    echo "    keeping $("$PY" -c 'import torch; print(torch.__version__)') (remembered in .venv/.torch-mode)"
else
    "${UV[@]}" "$(grep -E '^torch==' requirements.txt)" "$(grep -E '^torchvision==' requirements.txt)"
fi
echo "$TORCH" > "$VENV/.torch-mode"
done_step

# The cache key: everything the compiled ops depend on.
read -r TORCH_VER PY_TAG CUDA_TAG < <("$PY" - <<'EOF'
import os, shutil, sys
import torch
from torch.utils.cpp_extension import CUDA_HOME
cuda = 'cpu'
if torch.version.cuda and CUDA_HOME and (torch.cuda.is_available() or os.environ.get('FORCE_CUDA') == '1'):
    cuda = 'cu' + torch.version.cuda.replace('.', '')
print(torch.__version__.replace('+', '_'), f'cp{sys.version_info.major}{sys.version_info.minor}', cuda)
EOF
)
WHEEL_DIR="$CACHE/wheels/onedl-mmcv-$MMCV_VERSION/torch-$TORCH_VER-$PY_TAG-$CUDA_TAG"

step "build onedl-mmcv $MMCV_VERSION with compiled ops (torch $TORCH_VER, $PY_TAG, $CUDA_TAG)" \
    "the build log is in $CACHE/build-mmcv.log; it needs g++ and ninja (apt install g++ ninja-build), and nvcc for CUDA ops"
if compgen -G "$WHEEL_DIR/*.whl" >/dev/null; then
    echo "    cached: $(ls "$WHEEL_DIR"/*.whl)"
else
    mkdir -p "$CACHE"
    BUILD=$(mktemp -d "$CACHE/build.XXXXXX")
    # The compiler wrapper (tools/lib/mmcv_cxx.sh): C++20 for torch's headers, no debug info, and a
    # precompiled <torch/types.h> (gcc): together the build takes about 2 min here instead of 11.
    mkdir -p "$BUILD/bin" "$BUILD/pch"
    export MMCV_REAL_CXX
    MMCV_REAL_CXX=$(real_compiler c++ "$BUILD/bin")  # the user's (conda, modules), not only /usr/bin
    if [[ "$("$MMCV_REAL_CXX" --version 2>/dev/null)" == *"Free Software Foundation"* ]]; then
        export MMCV_PCH_DIR=$BUILD/pch  # gcc's precompiled headers (clang's work differently)
    fi
    for cc in c++ g++; do
        ln -s "$ROOT/tools/lib/mmcv_cxx.sh" "$BUILD/bin/$cc"
    done
    "${PIP[@]}" download $PIP_QUIET --no-deps --no-binary :all: "onedl-mmcv==$MMCV_VERSION" -d "$BUILD/src"
    export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
    [[ "$CUDA_TAG" == cpu ]] && export FORCE_CUDA=0 || export FORCE_CUDA=1
    echo "    compiling (MAX_JOBS=$MAX_JOBS, FORCE_CUDA=$FORCE_CUDA); progress below; log: $CACHE/build-mmcv.log"
    # -v: pip passes ninja's "[done/total]" lines through to the log, which watch_build reads
    PATH="$BUILD/bin:$PATH" CXX="$BUILD/bin/c++" "${PIP[@]}" wheel -v --no-build-isolation --no-deps \
        -w "$BUILD/wheel" "$BUILD"/src/onedl_mmcv-*.tar.gz >"$CACHE/build-mmcv.log" 2>&1 &
    build_pid=$!
    trap 'kill "$build_pid" 2>/dev/null' INT TERM  # Ctrl-C stops the compile too
    watch_build "$build_pid" "$CACHE/build-mmcv.log" "${BUILD_PROGRESS_INTERVAL:-30}"
    wait "$build_pid" || { tail -30 "$CACHE/build-mmcv.log" >&2; false; }
    trap - INT TERM
    # Publish atomically: a killed build never leaves a half wheel in the cache.
    mkdir -p "$(dirname "$WHEEL_DIR")"
    rm -rf "$WHEEL_DIR.tmp" && mv "$BUILD/wheel" "$WHEEL_DIR.tmp" && mv "$WHEEL_DIR.tmp" "$WHEEL_DIR"
    rm -rf "$BUILD"
    echo "    cached: $(ls "$WHEEL_DIR"/*.whl)"
fi
done_step

step "install onedl-mmcv and the rest of requirements.txt" \
    "check the registry; a stale cached wheel can be dropped with rm -rf $WHEEL_DIR"
# Reinstall only when the installed build is not this cache entry (another torch, say).
if [[ "$(cat "$VENV/.mmcv-build" 2>/dev/null)" != "$WHEEL_DIR" ]]; then
    "${UV[@]}" --no-deps --reinstall "$WHEEL_DIR"/*.whl
    echo "$WHEEL_DIR" > "$VENV/.mmcv-build"
fi
# The rest, mmcv's own needs included (mmcv went in --no-deps so nothing can swap torch underneath
# it), exactly as resolved in requirements.lock (`make lock` makes it from requirements.txt); the
# lock holds neither torch nor the CUDA libraries only torch needs.
"${UV[@]}" -r requirements.lock
done_step

step "install mmdet_dinov2 (editable)" "check pyproject.toml"
"${UV[@]}" --no-deps --no-build-isolation -e .
done_step

step "check the stack imports" \
    "read the error above; rm -rf .venv and run make setup again to start clean (the mmcv wheel stays cached)"
"$PY" -c "import torch, mmcv, mmcv.ops, mmengine, mmdet, timm, mmdet_dinov2; \
print('    torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmengine', mmengine.__version__, '| mmdet', mmdet.__version__, '| timm', timm.__version__)" 2>&1 \
    | grep -v 'Could not import OneDL'
done_step

touch "$VENV/.setup-stamp"
echo "==> [setup] finished in $(($(date +%s) - T0)) s"
