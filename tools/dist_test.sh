#!/usr/bin/env bash
# Evaluate a checkpoint with NUM_PROCESSES processes per machine, started by torchrun:
#   tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [tools/test.py arguments]
# Several machines: NNODES, NODE_RANK, MASTER_ADDR and PORT as for tools/dist_train.sh.
set -euo pipefail
source "$(dirname "$0")/lib/launch.sh"
need_args 3 "$0 CONFIG CHECKPOINT NUM_PROCESSES [tools/test.py arguments]" "$@"
run_torchrun "$3" tools/test.py "$1" "$2" "${@:4}"
