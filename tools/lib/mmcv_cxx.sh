#!/usr/bin/env bash
# The C++ compiler that onedl-mmcv's build calls (installed as c++/g++ in a folder put first on PATH by
# tools/setup_env.sh and tools/gpu/install_offline.sh). It runs $MMCV_REAL_CXX (the user's compiler)
# with three changes, none of which changes the code that comes out:
#   -std=c++17 -> -std=c++20  onedl-mmcv's setup.py hard-codes C++17; torch 2.14's headers need C++20
#   -g dropped                Python's CFLAGS carry it: each unit 2.5x slower, objects 75x larger
#   a precompiled header      of <torch/types.h>, which every op includes: parsing it is ~5.7 s of the
#                             ~6-7 s a unit takes. Built once, by the first unit, with that unit's
#                             flags; each later .cpp unit starts from it (gcc only: MMCV_PCH_DIR set).
# gcc checks that a precompiled header matches the unit's flags and macros, and parses the header
# normally when it does not (-Winvalid-pch says so in the build log), so a mismatch costs time only.
set -u
real=${MMCV_REAL_CXX:?MMCV_REAL_CXX must name the real C++ compiler}
args=()
compiling=0 source_cpp=0 skip_next=0
pch_args=()  # the unit's flags without its input, output and dependency file
for a in "$@"; do
    case "$a" in
        -std=c++17) a=-std=c++20 ;;
        -g|-g[0-9]|-ggdb*) continue ;;
    esac
    args+=("$a")
    if ((skip_next)); then skip_next=0; continue; fi
    case "$a" in
        -c) compiling=1 ;;
        -o|-MF|-MT|-MQ) skip_next=1 ;;
        -MMD|-MD) ;;
        */ops/csrc/*.cpp) source_cpp=1 ;;  # mmcv's own units (not nvcc's host-side files)
        *) pch_args+=("$a") ;;
    esac
done

pch_dir=${MMCV_PCH_DIR:-}
if [[ -n "$pch_dir" ]] && ((compiling && source_cpp)) && command -v flock >/dev/null; then
    header=$pch_dir/torch_types.h
    # one builder at a time; the others wait for it (ninja runs several units at once)
    (
        flock 9
        if [[ ! -e "$header.gch" && ! -e "$header.failed" ]]; then
            echo '#include <torch/types.h>' > "$header"
            if "$real" "${pch_args[@]}" -x c++-header "$header" -o "$header.gch.tmp"; then
                mv "$header.gch.tmp" "$header.gch"
            else
                touch "$header.failed"  # compile without it
            fi
        fi
    ) 9>"$pch_dir/lock"
    if [[ -e "$header.gch" ]]; then
        exec "$real" -include "$header" -Winvalid-pch "${args[@]}"
    fi
fi
exec "$real" "${args[@]}"
