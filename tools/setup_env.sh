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
#   MMDET_DINOV2_CACHE    cache root (default ~/.cache/mmdet-dinov2): the built mmcv wheel, and pip's
#                         and uv's caches unless PIP_CACHE_DIR / UV_CACHE_DIR say otherwise
#   FORCE_CUDA=1          build mmcv's CUDA ops even when no GPU is visible (needs nvcc)
#   MAX_JOBS=N            parallel compile jobs for the mmcv build (default: number of cores)
#   SETUP_MIN_FREE_GIB=10 free space the cache folder's disk must have (torch alone is ~6 GB)
#   BUILD_PROGRESS_INTERVAL=S  seconds between two progress lines of the mmcv build (default 30)
#   MMCV_FULL_BUILD=1     compile every op of onedl-mmcv, not only those of tools/lib/mmcv_ops.txt
#                         (the trimmed build's other ops raise an error naming themselves)
#
# Any failure prints "setup failed in step: ..." and what to try; a failure, Ctrl-C or kill also
# stops the mmcv build running in the background (tools/lib/setup_helpers.sh).
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
CACHE=${MMDET_DINOV2_CACHE:-$HOME/.cache/mmdet-dinov2}
MMCV_VERSION=2.3.6
PIP_QUIET=${PIP_QUIET:--q}

T0=$(date +%s)
MMCV_BUILD_S=0
setup_traps setup  # any failure names its step; the exit trap stops a background build (tools/lib)
STEP="read the settings"
STEP_HINT="TORCH=install or TORCH=keep"
TORCH=$(torch_mode "$VENV")  # TORCH=keep is remembered in .venv/.torch-mode

# pip, with the noise of this machine's local index mirrors ("... is ignored: it is neither a file
# nor a directory") filtered out of stderr.
pip_quiet() {
    "$@" 2> >(grep -v 'is neither a file nor a directory' >&2)
}

step "check the cache folder $CACHE" \
    "set MMDET_DINOV2_CACHE=/a/writable/folder/with/10GB (it keeps pip's, uv's and the mmcv build's caches)"
writable_dir "$CACHE" "${SETUP_MIN_FREE_GIB:-10}" MMDET_DINOV2_CACHE
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$CACHE/pip} UV_CACHE_DIR=${UV_CACHE_DIR:-$CACHE/uv}
done_step

step "create virtual environment .venv" \
    "PYTHON=/path/to/python3.11 make setup (rm -rf .venv first if it holds another Python); the disk needs room for it (about 6 GB)"
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" --version >/dev/null 2>&1 || { echo "!! no interpreter '$PYTHON'" >&2; false; }
    venv_args=()
    if [[ "${VENV_SYSTEM_SITE:-0}" == 1 ]]; then venv_args+=(--system-site-packages); fi
    "$PYTHON" -m venv "${venv_args[@]}" "$VENV"
fi
PY="$VENV/bin/python"
PIP=(pip_quiet "$PY" -m pip --disable-pip-version-check)
venv_python=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [[ "$venv_python" != 3.11 ]]; then
    echo "!! .venv has Python $venv_python; the pinned stack (requirements.lock, the torch wheels) is" \
         "for Python 3.11" >&2
    false
fi
done_step

step "install build tools (uv, setuptools, wheel, ninja)" \
    "check access to the package registry (pip config list); the pins are in requirements.txt"
"${PIP[@]}" install $PIP_QUIET "$(grep -E '^uv==' requirements.txt)"
UV=("$VENV/bin/uv" pip install --quiet --python "$PY")
"${UV[@]}" "$(grep -E '^setuptools==' requirements.txt)" "$(grep -E '^wheel==' requirements.txt)" \
    "$(grep -E '^ninja==' requirements.txt)"
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

step "build onedl-mmcv $MMCV_VERSION with compiled ops" \
    "the build log is $CACHE/build-mmcv.log; the build needs g++ (apt install g++), and nvcc for CUDA ops; MMCV_FULL_BUILD=1 compiles every op instead of the trimmed set"
# The cache key: everything the compiled ops depend on.
read -r TORCH_VER PY_TAG CUDA_TAG < <("$PY" - <<'EOF'
import os, sys
import torch
from torch.utils.cpp_extension import CUDA_HOME
cuda = 'cpu'
if torch.version.cuda and CUDA_HOME and (torch.cuda.is_available() or os.environ.get('FORCE_CUDA') == '1'):
    cuda = 'cu' + torch.version.cuda.replace('.', '')
print(torch.__version__.replace('+', '_'), f'cp{sys.version_info.major}{sys.version_info.minor}', cuda)
EOF
)
# trim-<hash>: only the ops of tools/lib/mmcv_ops.txt (tools/lib/trim_mmcv.py); full: MMCV_FULL_BUILD=1
BUILD_KIND=$(mmcv_build_kind "$PY")
WHEEL_DIR="$CACHE/wheels/onedl-mmcv-$MMCV_VERSION/torch-$TORCH_VER-$PY_TAG-$CUDA_TAG-$BUILD_KIND"
echo "    for torch $TORCH_VER, $PY_TAG, $CUDA_TAG, $BUILD_KIND"
if compgen -G "$WHEEL_DIR/*.whl" >/dev/null; then
    echo "    cached: $(ls "$WHEEL_DIR"/*.whl)"
else
    SRC=$CACHE/src; rm -rf "$SRC"
    # --no-build-isolation: pip reads the archive's metadata with .venv's setuptools instead of
    # installing a build environment first (half a minute of a cold setup)
    "${PIP[@]}" download $PIP_QUIET --no-deps --no-build-isolation --no-binary :all: \
        "onedl-mmcv==$MMCV_VERSION" -d "$SRC"
    arch=-
    if [[ "$CUDA_TAG" != cpu ]]; then
        arch=$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())' 2>/dev/null \
            || echo "${TORCH_CUDA_ARCH_LIST:-}")
    fi
    build_mmcv_wheel "$PY" "$SRC"/onedl_mmcv-*.tar.gz "$WHEEL_DIR" "$CACHE/build-mmcv.log" "$CUDA_TAG" "$arch"
    rm -rf "$SRC"
fi
done_step
MMCV_BUILD_S=$STEP_SECONDS

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
echo "==> [setup] finished in $(($(date +%s) - T0)) s (mmcv step $MMCV_BUILD_S s)"
