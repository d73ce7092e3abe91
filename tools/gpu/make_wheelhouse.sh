#!/usr/bin/env bash
# Download, on a machine with network, everything tools/gpu/install_offline.sh needs on a GPU node
# that has none: the wheels of tools/gpu/wheelhouse.txt for one Python (manylinux x86_64), built
# locally when a pure-Python package ships only a source archive, plus the onedl-mmcv source
# archive. Writes WHEELHOUSE/MANIFEST (name, version, sha256, file) and checks that every
# requirement of every wheel is in the wheelhouse or on the node (tools/gpu/node_packages.txt).
# Never torch: the node's CUDA build stays.
#
# usage: tools/gpu/make_wheelhouse.sh [--python 3.12] [--out wheelhouse/] [--packages FILE]
#                                     [--node-packages FILE] [--no-mmcv] [--dry-run]
# env:   PY=python that runs pip (default .venv/bin/python, else python3); pip's own variables
#        (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX) choose where packages come from.
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
while [[ $# -gt 0 ]]; do
    case "$1" in
        --python) TARGET_PY=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --packages) PACKAGES=$2; shift 2 ;;
        --node-packages) NODE_PACKAGES=$2; shift 2 ;;
        --no-mmcv) MMCV=""; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "!! unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ "$TARGET_PY" =~ ^3\.[0-9]+$ ]] || { echo "!! --python takes MAJOR.MINOR, e.g. 3.12 (got '$TARGET_PY')" >&2; exit 2; }
[[ -f "$PACKAGES" ]] || { echo "!! --packages: no file $PACKAGES" >&2; exit 2; }
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
[[ -n "$MMCV" ]] && echo "    source archive: $MMCV (built on the node by install_offline.sh)"
if [[ "$DRY_RUN" == 1 ]]; then
    echo "    dry run: pip download ${BINARY[*]} -d $OUT <each package>"
    echo "    dry run: then MANIFEST, closure check against $NODE_PACKAGES, size (limit ${MAX_MIB} MiB)"
    exit 0
fi

mkdir -p "$OUT"
rm -f "$OUT"/*.whl "$OUT"/*.tar.gz "$OUT/MANIFEST"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pip_() { "$PY" -m pip --disable-pip-version-check "$@" 2> >(grep -v 'is neither a file nor a directory' >&2); }
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
