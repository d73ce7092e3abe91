#!/usr/bin/env bash
# watch_build PID LOG [INTERVAL]: while process PID runs, print how many compilation units ninja
# has finished (its "[done/total]" lines in LOG) and the time left at the rate so far.
# Sourced by tools/setup_env.sh; tests/tools/test_build_eta.py runs it against a fake build.
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
