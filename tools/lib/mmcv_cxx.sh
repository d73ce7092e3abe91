#!/usr/bin/env bash
# The C++ compiler that onedl-mmcv's build calls (installed as c++/g++ in a folder put first on PATH by
# tools/setup_env.sh and tools/gpu/install_offline.sh). It runs $MMCV_REAL_CXX (the user's compiler)
# with two changes, neither of which changes the code that comes out:
#   -std=c++17 -> -std=c++20  onedl-mmcv's setup.py hard-codes C++17; torch 2.14's headers need C++20
#   -g dropped                Python's CFLAGS carry it: each unit 2.5x slower, objects 75x larger
set -u
real=${MMCV_REAL_CXX:?MMCV_REAL_CXX must name the real C++ compiler}
args=()
for a in "$@"; do
    case "$a" in
        -std=c++17) a=-std=c++20 ;;
        -g|-g[0-9]|-ggdb*) continue ;;
    esac
    args+=("$a")
done
exec "$real" "${args[@]}"
