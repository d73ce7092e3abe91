#!/usr/bin/env bash
# Functions of tools/setup_env.sh and tools/gpu/install_offline.sh, kept apart so that
# tests/tools/test_setup_helpers.py can run them without a whole setup. Every function is safe to
# call under `set -euo pipefail`: none returns non-zero except to report a real failure.

# the repository root, for the build scripts beside this file
SETUP_HELPERS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# setup_traps LABEL: report any failure, in any function or subshell, as "LABEL failed in step:
# STEP" with the step's hint (step below), and stop the background build (start_build) when the
# script ends for any reason: an error, Ctrl-C, SIGTERM or a normal exit.
setup_traps() {
    SETUP_LABEL=${1:-setup}
    STEP=${STEP:-starting}
    STEP_HINT=${STEP_HINT:-}
    set -E  # functions, command substitutions and subshells inherit the ERR trap
    trap _on_error ERR
    trap _on_exit EXIT
    trap '_on_signal INT 130' INT
    trap '_on_signal TERM 143' TERM
}

# step NAME HINT: start a step; a failure from here on names it and prints HINT.
step() {
    STEP=$1
    STEP_HINT=${2:-}
    STEP_T0=$(date +%s)
    echo "==> [${SETUP_LABEL:-setup}] $STEP"
}

# done_step: print the step's duration; STEP_SECONDS keeps it for a summary line.
done_step() {
    STEP_SECONDS=$(($(date +%s) - STEP_T0))
    echo "    done in $STEP_SECONDS s"
}

_on_error() {
    local rc=$?
    trap - ERR
    # A subshell only passes its status up: the shell that started the step reports it, once.
    if ((BASH_SUBSHELL == 0)); then
        {
            echo ""
            echo "!! ${SETUP_LABEL:-setup} failed in step: $STEP (exit $rc)"
            if [[ -n "${STEP_HINT:-}" ]]; then echo "!! what to try: $STEP_HINT"; fi
        } >&2
    fi
    exit "$rc"
}

_on_signal() {
    trap - ERR
    echo "" >&2
    echo "!! ${SETUP_LABEL:-setup} interrupted ($1) in step: $STEP; run it again to go on" >&2
    exit "$2"
}

_on_exit() {
    local rc=$?
    stop_build
    if [[ -n "${BUILD_TMP:-}" ]]; then rm -rf "$BUILD_TMP"; fi
    return "$rc"
}

# start_build LOG COMMAND...: run COMMAND in the background, in a process group of its own (pip,
# the compiler driver and every compiler under it), with its output in LOG; BUILD_PID is its pid
# and group id. stop_build (run by setup_traps' exit trap) stops the whole group. A guard process
# stops it too if this shell dies without running its traps (kill -9).
start_build() {
    local log=$1 shell_pid=$$
    shift
    setsid "$@" >"$log" 2>&1 </dev/null &
    BUILD_PID=$!
    (
        trap '' INT TERM  # a Ctrl-C reaches the shell's traps; the guard waits for the outcome
        while kill -0 "$shell_pid" 2>/dev/null && kill -0 "$BUILD_PID" 2>/dev/null; do
            sleep 1
        done
        kill -0 "$shell_pid" 2>/dev/null || kill -KILL -- "-$BUILD_PID" 2>/dev/null
        true
    ) </dev/null >/dev/null 2>&1 &
}

# stop_build: stop the group start_build made, if it still runs: TERM, then KILL after 5 s.
stop_build() {
    local pgid=${BUILD_PID:-} i
    BUILD_PID=""
    [[ -n "$pgid" ]] || return 0
    kill -TERM -- "-$pgid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 -- "-$pgid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
}

# torch_mode VENV: the TORCH setting to use: $TORCH if set, else the one remembered in
# VENV/.torch-mode by an earlier setup (so a later `make test` never replaces a kept CUDA torch),
# else install. Fails on any other value.
torch_mode() {
    local mode=${TORCH:-}
    if [[ -z "$mode" && -f "$1/.torch-mode" ]]; then
        mode=$(cat "$1/.torch-mode")
    fi
    mode=${mode:-install}
    if [[ "$mode" != install && "$mode" != keep ]]; then
        echo "!! TORCH=$mode: use TORCH=install (the pinned torch) or TORCH=keep (yours, untouched)" >&2
        return 2
    fi
    echo "$mode"
}

# real_compiler NAME: the compiler NAME the user has first on PATH (conda, environment modules),
# outside DIR_TO_SKIP (the wrapper folder) when given as $2.
real_compiler() {
    local name=$1 skip=${2:-} dir
    local IFS=:
    for dir in $PATH; do
        [[ -n "$skip" && "$dir" == "$skip" ]] && continue
        if [[ -x "$dir/$name" && ! -d "$dir/$name" ]]; then
            echo "$dir/$name"
            return 0
        fi
    done
    echo "!! no $name on PATH: install g++ (apt install g++; conda install gxx_linux-64)" >&2
    return 1
}

# writable_dir DIR MIN_FREE_GIB WHAT: create DIR if needed and check that a file can be written
# there and that its file system has MIN_FREE_GIB free; fails naming DIR and WHAT sets it.
writable_dir() {
    local dir=$1 need=$2 what=$3 free_kib probe
    if ! mkdir -p "$dir" 2>/dev/null || ! probe=$(mktemp "$dir/.write-test.XXXXXX" 2>/dev/null); then
        echo "!! cannot write to $dir: point $what at a writable folder" >&2
        return 1
    fi
    rm -f "$probe"
    free_kib=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
    if [[ "$free_kib" =~ ^[0-9]+$ ]] && ((free_kib < need * 1024 * 1024)); then
        echo "!! $dir has $((free_kib / 1024 / 1024)) GiB free, setup needs about $need GiB there:" \
             "free some space or point $what at a larger disk" >&2
        return 1
    fi
}

# watch_build PID LOG [INTERVAL]: while process PID runs, print every INTERVAL seconds how many
# compilation units ninja has finished (its "[done/total]" lines in LOG) and the time left at the
# rate so far. Prints nothing while LOG is missing or has no such line yet; returns as soon as
# PID ends (within a second), whatever LOG holds.
watch_build() {
    local pid=$1 log=$2 interval=${3:-30}
    local start tick=1 ticks=1 waited=0 units done_units total elapsed left shown=0
    start=$(date +%s)
    if [[ "$interval" =~ ^[0-9]+$ ]] && ((interval >= 1)); then
        ticks=$interval
    else
        tick=$interval  # a fraction of a second (tests): one report per tick
    fi
    while kill -0 "$pid" 2>/dev/null; do
        sleep "$tick" || true
        waited=$((waited + 1))
        ((waited >= ticks)) || continue
        waited=0
        units=$(grep -oE '\[[0-9]+/[0-9]+\]' "$log" 2>/dev/null | tail -n 1 | tr -d '[]') || true
        [[ "$units" =~ ^([0-9]+)/([0-9]+)$ ]] || continue
        done_units=${BASH_REMATCH[1]}
        total=${BASH_REMATCH[2]}
        ((done_units > shown)) || continue
        shown=$done_units
        elapsed=$(($(date +%s) - start))
        left=$((elapsed * (total - done_units) / done_units))
        printf '    %s/%s units compiled in %d min %02d s; about %d min %02d s left\n' \
            "$done_units" "$total" $((elapsed / 60)) $((elapsed % 60)) $((left / 60)) $((left % 60))
    done
    return 0
}

# mmcv_build_kind PY: the part of the mmcv wheel's cache key that says which ops it compiles:
# "trim-<hash>" (the trimmed build: tools/lib/mmcv_ops.txt and tools/lib/trim_mmcv.py hashed) or
# "full" (MMCV_FULL_BUILD=1: every op). A trimmed wheel is never taken for a full one, nor for a
# trim of another list.
mmcv_build_kind() {
    if [[ "${MMCV_FULL_BUILD:-0}" == 1 ]]; then
        echo full
    else
        "$1" "$SETUP_HELPERS_ROOT/tools/lib/trim_mmcv.py" key
    fi
}

# build_mmcv_wheel PY SDIST WHEEL_DIR LOG CUDA_TAG ARCH [PIP_OPTION...]: compile onedl-mmcv's ops
# from SDIST with PY, through the compiler wrapper tools/lib/mmcv_cxx.sh (C++20, no debug info),
# showing progress, and publish the wheel into WHEEL_DIR
# atomically: a killed build never leaves a half wheel there. The source is unpacked and trimmed
# first (tools/lib/trim_mmcv.py: only the ops of tools/lib/mmcv_ops.txt are compiled, the others
# raise an error naming them) unless MMCV_FULL_BUILD=1. CUDA_TAG cpu builds CPU ops only (ARCH -);
# cuXYZ builds CUDA ops for ARCH (TORCH_CUDA_ARCH_LIST, e.g. 9.0). Run it after setup_traps: the
# exit trap stops the build and removes its folder. Fails with the log's tail.
build_mmcv_wheel() {
    local py=$1 sdist=$2 wheel_dir=$3 log=$4 cuda=$5 arch=$6
    shift 6
    local root=$SETUP_HELPERS_ROOT py_bin pid
    mkdir -p "$(dirname "$wheel_dir")" "$(dirname "$log")"
    BUILD_TMP=$(mktemp -d "$(dirname "$wheel_dir")/build.XXXXXX")
    mkdir -p "$BUILD_TMP/bin" "$BUILD_TMP/src"
    # a source folder of our own: trimmed (or not), and built in place by pip
    tar -xzf "$sdist" -C "$BUILD_TMP/src"
    local src
    src=$(find "$BUILD_TMP/src" -mindepth 1 -maxdepth 1 -type d | head -n 1)
    [[ -f "$src/setup.py" ]] || { echo "!! $sdist holds no setup.py: not an onedl-mmcv source archive" >&2; return 1; }
    if [[ "${MMCV_FULL_BUILD:-0}" == 1 ]]; then
        echo "    full build (MMCV_FULL_BUILD=1): every op of onedl-mmcv is compiled"
    else
        "$py" "$root/tools/lib/trim_mmcv.py" trim "$src"
    fi
    export MMCV_REAL_CXX
    MMCV_REAL_CXX=$(real_compiler c++ "$BUILD_TMP/bin")  # the user's (conda, modules) first
    ln -s "$root/tools/lib/mmcv_cxx.sh" "$BUILD_TMP/bin/c++"
    export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
    if [[ "$cuda" == cpu ]]; then
        ln -s "$root/tools/lib/mmcv_cxx.sh" "$BUILD_TMP/bin/g++"  # nvcc's host compiler: not wrapped
        export FORCE_CUDA=0 CUDA_VISIBLE_DEVICES=""
    else
        export FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=$arch
    fi
    # ninja parallelises the build: the interpreter's own (the pip package) first, then the PATH's
    py_bin=$(dirname "$("$py" -c 'import sys; print(sys.executable)')")
    if ! PATH="$py_bin:$PATH" command -v ninja >/dev/null; then
        echo "    no ninja on PATH: the units compile one at a time (pip install ninja)" >&2
    fi
    local what="MAX_JOBS=$MAX_JOBS, FORCE_CUDA=$FORCE_CUDA"
    [[ "$cuda" == cpu ]] || what+=", TORCH_CUDA_ARCH_LIST=$arch"
    echo "    compiling ($what); log: $log"
    # -v: pip passes ninja's "[done/total]" lines through to the log, which watch_build reads
    start_build "$log" env PATH="$BUILD_TMP/bin:$py_bin:$PATH" CXX="$BUILD_TMP/bin/c++" \
        "$py" -m pip wheel -v --no-build-isolation --no-deps "$@" -w "$BUILD_TMP/wheel" "$src"
    pid=$BUILD_PID
    watch_build "$pid" "$log" "${BUILD_PROGRESS_INTERVAL:-30}"
    if ! wait "$pid"; then
        BUILD_PID=""
        tail -30 "$log" >&2
        echo "!! the mmcv build failed; whole log: $log" >&2
        return 1
    fi
    BUILD_PID=""
    rm -rf "$wheel_dir.tmp"
    mv "$BUILD_TMP/wheel" "$wheel_dir.tmp"
    mv "$wheel_dir.tmp" "$wheel_dir"
    rm -rf "$BUILD_TMP"
    BUILD_TMP=""
    echo "    cached: $(ls "$wheel_dir"/*.whl)"
}
