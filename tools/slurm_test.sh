#!/usr/bin/env bash
# Evaluate a checkpoint on a Slurm cluster, one task per GPU, started by srun:
#   tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py arguments]
# GPUS (total, default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5) and SRUN_ARGS set the allocation.
set -euo pipefail
source "$(dirname "$0")/lib/launch.sh"
need_args 4 "$0 PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py arguments]" "$@"
run_srun "$1" "$2" tools/test.py "$3" "$4" "${@:5}"
