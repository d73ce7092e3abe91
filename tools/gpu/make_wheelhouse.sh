#!/usr/bin/env bash
# Download, on a machine with network, everything tools/gpu/install_offline.sh needs on a GPU node
# that has none: the wheels of tools/gpu/wheelhouse.txt for one Python (manylinux x86_64), built
# locally when a pure-Python package ships only a source archive, plus the onedl-mmcv source
# archive, and (--cuda-wheel) onedl-mmcv cross-built here with CUDA ops for the node: trimmed to
# tools/lib/mmcv_ops.txt, for --python, --torch, --cuda and --arch, in a build venv of that Python
# and torch (torch's CUDA wheels install without a GPU) with this machine's nvcc, into
# WHEELHOUSE/prebuilt/KEY/ (install_offline.sh takes it when KEY is the node's). Writes
# WHEELHOUSE/MANIFEST (name, version, sha256, file) and checks that every requirement of every
# wheel is in the wheelhouse or on the node (tools/gpu/node_packages.txt). Never torch in the
# wheelhouse: the node's CUDA build stays.
#
# usage: tools/gpu/make_wheelhouse.sh [--python 3.12] [--out wheelhouse/] [--packages FILE]
#                                     [--node-packages FILE] [--no-mmcv] [--dry-run]
#                                     [--cuda-wheel [--torch 2.11.0] [--cuda 13.0] [--arch 9.0]]
# env:   PY=python that runs pip (default .venv/bin/python, else python3); pip's own variables
#        (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX) choose where packages come from.
#        CUDA_HOME: the CUDA toolkit of the cross-build (default: /usr/local/cuda-<cuda>, or the
#        nvcc on PATH, when its release is --cuda's); MAX_JOBS (default: cores);
#        MMDET_DINOV2_CACHE: where the build venv and the built wheel are kept (a rerun compiles
#        nothing: the cache key holds Python, torch, CUDA, architecture and the trim).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET_PY=3.12
OUT=$ROOT/wheelhouse
PACKAGES=$HERE/wheelhouse.txt
NODE_PACKAGES=$HERE/node_packages.txt
MMCV=onedl-mmcv==2.3.6
DRY_RUN=0
MAX_MIB=40
CUDA_WHEEL=0
CROSS_TORCH=2.11.0
CROSS_CUDA=13.0
CROSS_ARCH=9.0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --python) TARGET_PY=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --packages) PACKAGES=$2; shift 2 ;;
        --node-packages) NODE_PACKAGES=$2; shift 2 ;;
        --no-mmcv) MMCV=""; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        --cuda-wheel) CUDA_WHEEL=1; shift ;;
        --torch) CROSS_TORCH=$2; shift 2 ;;
        --cuda) CROSS_CUDA=$2; shift 2 ;;
        --arch) CROSS_ARCH=$2; shift 2 ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "!! unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$TARGET_PY" =~ ^3\.[0-9]+$ ]] || { echo "!! --python takes MAJOR.MINOR, e.g. 3.12 (got '$TARGET_PY')" >&2; exit 2; }
[[ -f "$PACKAGES" ]] || { echo "!! --packages: no file $PACKAGES" >&2; exit 2; }
[[ "$CROSS_CUDA" =~ ^[0-9]+\.[0-9]+$ ]] || { echo "!! --cuda takes MAJOR.MINOR, e.g. 13.0 (got '$CROSS_CUDA')" >&2; exit 2; }
[[ "$CROSS_ARCH" =~ ^[0-9]+\.[0-9]+$ ]] || { echo "!! --arch takes a compute capability X.Y, e.g. 9.0 (got '$CROSS_ARCH')" >&2; exit 2; }
[[ "$CROSS_TORCH" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "!! --torch takes a version X.Y.Z, e.g. 2.11.0 (got '$CROSS_TORCH')" >&2; exit 2; }
if [[ "$CUDA_WHEEL" == 1 && -z "$MMCV" ]]; then
    echo "!! --cuda-wheel builds onedl-mmcv: it cannot go with --no-mmcv" >&2; exit 2
fi
if [[ -z "${PY:-}" ]]; then
    [[ -x "$ROOT/.venv/bin/python" ]] && PY=$ROOT/.venv/bin/python || PY=python3
fi
mapfile -t REQS < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$PACKAGES" | grep -v '^$')
for r in "${REQS[@]}"; do
    case "$(echo "${r%%[<>=!~;]*}" | tr 'A-Z_.' 'a-z--')" in
        torch|torchvision|torchaudio|triton|nvidia-*)
            echo "!! $PACKAGES lists '$r': the node's own CUDA torch stack is never replaced" >&2; exit 2 ;;
    esac
done
ABI=cp${TARGET_PY/./}
# pip matches manylinux_2_N exactly: name the glibc levels wheels are commonly tagged with.
PLATFORMS=()
for p in manylinux_2_39 manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 \
         manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
    PLATFORMS+=(--platform "${p}_x86_64")
done
BINARY=(--only-binary :all: --no-deps --python-version "$TARGET_PY" --implementation cp --abi "$ABI"
        --abi abi3 --abi none "${PLATFORMS[@]}" --platform any)

echo "==> [wheelhouse] Python $TARGET_PY ($ABI, manylinux x86_64) -> $OUT"
echo "    packages (${#REQS[@]}): ${REQS[*]}"
[[ -n "$MMCV" ]] && echo "    source archive: $MMCV (built on the node by install_offline.sh unless a prebuilt wheel fits)"
CUDA_TAG=cu${CROSS_CUDA/./}
SM=sm${CROSS_ARCH/./}
[[ "$CUDA_WHEEL" == 1 ]] && echo "    cross-build: onedl-mmcv with CUDA $CROSS_CUDA ops for $SM, Python $TARGET_PY, torch $CROSS_TORCH -> $OUT/prebuilt/"
if [[ "$DRY_RUN" == 1 ]]; then
    echo "    dry run: pip download ${BINARY[*]} -d $OUT <each package>"
    [[ "$CUDA_WHEEL" == 1 ]] && echo "    dry run: a Python $TARGET_PY venv with torch==$CROSS_TORCH, nvcc $CROSS_CUDA, TORCH_CUDA_ARCH_LIST=$CROSS_ARCH"
    echo "    dry run: then MANIFEST, closure check against $NODE_PACKAGES, size (limit ${MAX_MIB} MiB)"
    exit 0
fi

mkdir -p "$OUT"
rm -rf "$OUT"/*.whl "$OUT"/*.tar.gz "$OUT/MANIFEST" "$OUT/prebuilt"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pip_() { "$PY" -m pip --disable-pip-version-check "$@" 2> >(grep -v 'is neither a file nor a directory' >&2); }

# the interpreter of Python $TARGET_PY: on PATH, else pyenv's
find_python() {
    local exe
    for exe in "$(command -v "python$TARGET_PY" 2>/dev/null)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$TARGET_PY".*/bin/"python$TARGET_PY"; do
        if [[ -n "$exe" && -x "$exe" ]] && "$exe" --version >/dev/null 2>&1; then echo "$exe"; return 0; fi
    done
    echo "!! no Python $TARGET_PY here (python$TARGET_PY on PATH, or pyenv): install it to cross-build for the node" >&2
    return 1
}

# a CUDA toolkit whose nvcc is release $CROSS_CUDA: CUDA_HOME, /usr/local/cuda-X.Y, /usr/local/cuda
find_cuda_home() {
    local home
    for home in "${CUDA_HOME:-}" "/usr/local/cuda-$CROSS_CUDA" /usr/local/cuda; do
        [[ -n "$home" && -x "$home/bin/nvcc" ]] || continue
        if "$home/bin/nvcc" --version 2>/dev/null | grep -q "release $CROSS_CUDA,"; then echo "$home"; return 0; fi
    done
    echo "!! no nvcc of CUDA $CROSS_CUDA (CUDA_HOME, /usr/local/cuda-$CROSS_CUDA, /usr/local/cuda): install the toolkit or point CUDA_HOME at it" >&2
    return 1
}

cross_build() {
    local cache=${MMDET_DINOV2_CACHE:-$HOME/.cache/mmdet-dinov2} host_py venv bpy cuda_home site key kind sdist so cuobjdump t0
    # shellcheck source=tools/lib/setup_helpers.sh
    source "$ROOT/tools/lib/setup_helpers.sh"
    setup_traps wheelhouse
    step "cross-build onedl-mmcv: CUDA $CROSS_CUDA, $SM, Python $TARGET_PY, torch $CROSS_TORCH" \
        "the build log is named below; MMCV_FULL_BUILD=1 builds every op"
    t0=$(date +%s)
    host_py=$(find_python)
    cuda_home=$(find_cuda_home)
    venv=$cache/cross-build/py$TARGET_PY-torch$CROSS_TORCH-$CUDA_TAG
    bpy=$venv/bin/python
    if ! "$bpy" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$CROSS_TORCH' or torch.version.cuda != '$CROSS_CUDA')" 2>/dev/null; then
        echo "    build venv $venv: torch==$CROSS_TORCH (CUDA wheels, installed without a GPU; a few GB the first time)"
        rm -rf "$venv"
        "$host_py" -m venv "$venv"
        if [[ -x "$ROOT/.venv/bin/uv" ]]; then
            UV_CACHE_DIR=${UV_CACHE_DIR:-$cache/uv} "$ROOT/.venv/bin/uv" pip install --quiet --python "$bpy" \
                "torch==$CROSS_TORCH" "setuptools>=80" wheel ninja
        else
            "$bpy" -m pip install -q "torch==$CROSS_TORCH" "setuptools>=80" wheel ninja
        fi
        "$bpy" -c "import torch, sys; sys.exit(torch.version.cuda != '$CROSS_CUDA')" || {
            echo "!! torch==$CROSS_TORCH from the registry is not built for CUDA $CROSS_CUDA ($("$bpy" -c 'import torch; print(torch.version.cuda)'))" >&2
            return 1
        }
    fi
    kind=$(mmcv_build_kind "$bpy")
    key=$("$bpy" -c "import sys, torch; print(f\"torch-{torch.__version__.replace('+', '_')}-cp{sys.version_info.major}{sys.version_info.minor}\")")-$CUDA_TAG-$SM-$kind
    site=$("$bpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    local wheel_dir=$cache/wheels/onedl-mmcv-${MMCV#*==}/$key
    if ! compgen -G "$wheel_dir/*.whl" >/dev/null; then
        pip_ download -q --no-deps --no-binary :all: -d "$TMP/mmcv-src" "$MMCV"
        sdist=$(ls "$TMP"/mmcv-src/onedl_mmcv-*.tar.gz)
        # torch's CUDA headers include cuBLAS, cuSPARSE and cuSOLVER headers: the toolkit may lack
        # them; torch's own nvidia-* wheels carry them
        export CUDA_HOME=$cuda_home PATH=$cuda_home/bin:$PATH
        export CPATH=$(ls -d "$site"/nvidia/cu*/include 2>/dev/null | tr '\n' ':')${CPATH:-}
        build_mmcv_wheel "$bpy" "$sdist" "$wheel_dir" "$cache/build-mmcv-$key.log" "$CUDA_TAG" "$CROSS_ARCH"
    else
        echo "    cached: $(ls "$wheel_dir"/*.whl)"
    fi
    mkdir -p "$OUT/prebuilt/$key"
    cp "$wheel_dir"/*.whl "$OUT/prebuilt/$key/"
    # the kernels in the extension: one ELF for $SM each (cuobjdump: the toolkit's, or triton's)
    rm -rf "$TMP/so" && mkdir -p "$TMP/so"
    "$bpy" -m zipfile -e "$OUT"/prebuilt/"$key"/*.whl "$TMP/so"
    so=$(ls "$TMP"/so/mmcv/_ext*.so)
    cuobjdump=$(command -v cuobjdump || ls "$cuda_home/bin/cuobjdump" "$site/triton/backends/nvidia/bin/cuobjdump" 2>/dev/null | head -n 1 || true)
    if [[ -n "$cuobjdump" ]]; then
        "$cuobjdump" --list-elf "$so" > "$TMP/elf.txt"
        local elf=sm_${SM#sm}  # cuobjdump names the images sm_90, the cache key sm90
        grep -q "\.$elf\.cubin" "$TMP/elf.txt" || { cat "$TMP/elf.txt" >&2; echo "!! $so holds no $elf code" >&2; return 1; }
        echo "    $(grep -c "\.$elf\.cubin" "$TMP/elf.txt") $elf kernel images in mmcv/_ext (cuobjdump --list-elf), for other architectures: $(grep -vc "\.$elf\.cubin" "$TMP/elf.txt" || true)"
    else
        echo "    (no cuobjdump here: the $SM check of the kernels is left out)"
    fi
    echo "    $(basename "$(ls "$OUT"/prebuilt/"$key"/*.whl)"): $(du -k "$OUT"/prebuilt/"$key"/*.whl | cut -f1) KiB"
    done_step
}
for r in "${REQS[@]}"; do
    if pip_ download -q "${BINARY[@]}" -d "$OUT" "$r" 2>"$TMP/err"; then
        continue
    fi
    # No wheel for that Python: a pure-Python source archive (onedl-mmdetection) is built into a
    # py3-none-any wheel here; anything that compiles must come as a wheel.
    echo "    $r: no wheel for $ABI; building one from its source archive"
    rm -rf "$TMP/src" "$TMP/built"
    pip_ download -q --no-deps --no-binary :all: -d "$TMP/src" "$r" \
        || { cat "$TMP/err" >&2; echo "!! $r: neither a wheel nor a source archive found" >&2; exit 1; }
    pip_ wheel -q --no-deps -w "$TMP/built" "$TMP"/src/* >/dev/null
    built=$(ls "$TMP"/built/*.whl)
    [[ "$built" == *-none-any.whl ]] \
        || { echo "!! $r built $(basename "$built"), not pure Python: it must come as a $ABI wheel" >&2; exit 1; }
    mv "$built" "$OUT/"
done
if [[ -n "$MMCV" ]]; then
    pip_ download -q --no-deps --no-binary :all: -d "$OUT" "$MMCV"
fi
if [[ "$CUDA_WHEEL" == 1 ]]; then
    # in a subshell: the build's traps (stop the compilers on any exit) stay there
    ( cross_build ) || { echo "!! the cross-build of onedl-mmcv failed (above)" >&2; exit 1; }
fi
if compgen -G "$OUT/torch-*" >/dev/null || compgen -G "$OUT/torchvision-*" >/dev/null; then
    echo "!! torch ended up in $OUT: remove it; the node's torch is never replaced" >&2; exit 1
fi

echo "==> [wheelhouse] MANIFEST"
"$PY" "$HERE/wheelhouse.py" manifest "$OUT" --python "$TARGET_PY"
echo "==> [wheelhouse] every requirement is in the wheelhouse or on the node ($NODE_PACKAGES)"
"$PY" "$HERE/wheelhouse.py" closure "$OUT" --python "$TARGET_PY" --node-packages "$NODE_PACKAGES"
echo "    ok"
kib=$(du -sk "$OUT" | cut -f1)
printf '==> [wheelhouse] %s: %d files, %.1f MiB\n' "$OUT" "$(ls "$OUT" | grep -vc MANIFEST)" "$(echo "$kib / 1024" | bc -l)"
if (( kib > MAX_MIB * 1024 )); then
    echo "!! larger than $MAX_MIB MiB: a device call carries at most 64 MiB with the working tree" >&2
    exit 1
fi
