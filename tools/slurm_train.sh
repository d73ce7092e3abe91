#!/usr/bin/env bash
# Train on a Slurm cluster, one task per GPU, started by srun:
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments]
# GPUS (total, default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5) and SRUN_ARGS set the allocation.
set -euo pipefail
source "$(dirname "$0")/lib/launch.sh"
need_args 4 "$0 PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments]" "$@"
run_srun "$1" "$2" tools/train.py "$3" --work-dir="$4" "${@:5}"
