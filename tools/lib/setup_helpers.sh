#!/usr/bin/env bash
# Functions of tools/setup_env.sh, kept apart so that tests/tools/test_setup_helpers.py can run them
# without a whole setup.

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

# watch_build PID LOG [INTERVAL]: while process PID runs, print how many compilation units ninja
# has finished (its "[done/total]" lines in LOG) and the time left at the rate so far.
watch_build() {
    local pid=$1 log=$2 interval=${3:-30}
    local start now done_units total elapsed left shown=""
    start=$(date +%s)
    while kill -0 "$pid" 2>/dev/null; do
        sleep "$interval"
        read -r done_units total < <(grep -oE '\[[0-9]+/[0-9]+\]' "$log" 2>/dev/null | tail -1 \
            | tr -d '[]' | tr '/' ' ')
        [[ -z "${done_units:-}" || "$done_units" == "$shown" || "$done_units" -eq 0 ]] && continue
        shown=$done_units
        now=$(date +%s)
        elapsed=$((now - start))
        left=$((elapsed * (total - done_units) / done_units))
        printf '    %s/%s units compiled in %d min %02d s; about %d min %02d s left\n' \
            "$done_units" "$total" $((elapsed / 60)) $((elapsed % 60)) $((left / 60)) $((left % 60))
    done
}
