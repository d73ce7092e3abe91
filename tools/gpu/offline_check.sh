#!/usr/bin/env bash
# `make offline-check`: prove, on this CPU machine, that the two offline scripts work end to end.
#   1. make_wheelhouse.sh for this machine's Python (3.11 here; the node's is 3.12);
#   2. a fresh venv that looks like the GPU node before the install: torch, torchvision and the
#      node's other packages (node_packages.txt, at .venv's versions), installed by uv from its
#      cache with --offline, so no index is reached; none of the wheelhouse's packages;
#   3. install_offline.sh --cpu into that venv (pip --isolated --no-index: wheelhouse only);
#   4. check.sh --cpu with that venv: tests/cuda (skipped without CUDA) and a tiny benchmark.
# The built mmcv wheel is cached (install_offline.sh --cache): the first run compiles mmcv's CPU
# ops (minutes), later runs reuse it. OFFLINE_CHECK_FRESH=1 starts with an empty build cache.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${MMDET_DINOV2_CACHE:-$HOME/.cache/mmdet-dinov2}
WORK=$CACHE/offline-check
HOST_PY=$ROOT/.venv/bin/python
PY_VER=$("$HOST_PY" -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
T0=$(date +%s)

[[ -x "$ROOT/.venv/bin/uv" ]] || { echo "!! needs .venv with uv (make setup)" >&2; exit 1; }
rm -rf "$WORK/wheelhouse" "$WORK/venv"
mkdir -p "$WORK"
[[ "${OFFLINE_CHECK_FRESH:-0}" == 1 ]] && rm -rf "$WORK/wheels"

PY=$HOST_PY "$HERE/make_wheelhouse.sh" --python "$PY_VER" --out "$WORK/wheelhouse"

echo "==> [offline-check] a node-like venv (torch + the node's packages, from uv's cache, offline)"
t=$(date +%s)
"$(readlink -f "$HOST_PY")" -m venv "$WORK/venv"
# .venv's versions of what the node has; nothing the wheelhouse brings.
"$HOST_PY" -m pip list --format=freeze 2>/dev/null > "$WORK/venv-freeze.txt"
sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$HERE/node_packages.txt" | tr 'A-Z_.' 'a-z--' > "$WORK/node-names.txt"
awk -F'==' 'NR==FNR { keep[$1] = 1; next }
            { n = tolower($1); gsub(/[_.]/, "-", n); if (n in keep) print }' \
    "$WORK/node-names.txt" "$WORK/venv-freeze.txt" > "$WORK/node-base.txt"
# their own dependencies (filelock, sympy, ...) at .venv's versions as constraints
UV_CACHE_DIR=${UV_CACHE_DIR:-$CACHE/uv} "$ROOT/.venv/bin/uv" pip install --offline --quiet \
    --python "$WORK/venv/bin/python" -r "$WORK/node-base.txt" -c "$WORK/venv-freeze.txt"
echo "    $(wc -l < "$WORK/node-base.txt") packages and their dependencies in $(($(date +%s) - t)) s"

"$HERE/install_offline.sh" "$WORK/wheelhouse" --python "$WORK/venv/bin/python" --cpu --cache "$WORK/wheels"
"$HERE/check.sh" --cpu --python "$WORK/venv/bin/python" --wheelhouse "$WORK/wheelhouse" \
    --report "$WORK/gpu_report.md"
echo "==> [offline-check] passed in $(($(date +%s) - T0)) s (report: $WORK/gpu_report.md)"
