#!/usr/bin/env bash
# Train with NUM_PROCESSES processes per machine (GPUs, or CPU processes with gloo when there is
# no CUDA), started by torchrun:
#   tools/dist_train.sh CONFIG NUM_PROCESSES [tools/train.py arguments]
# Several machines: run it on each with NNODES, NODE_RANK (0..NNODES-1), MASTER_ADDR (the address
# of node 0) and PORT set alike, e.g. NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 tools/dist_train.sh ...
set -euo pipefail
source "$(dirname "$0")/lib/launch.sh"
need_args 2 "$0 CONFIG NUM_PROCESSES [tools/train.py arguments]" "$@"
run_torchrun "$2" tools/train.py "$1" "${@:3}"
