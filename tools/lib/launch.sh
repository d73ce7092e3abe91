#!/usr/bin/env bash
# What tools/dist_{train,test}.sh and tools/slurm_{train,test}.sh share: the repository root on
# PYTHONPATH, .venv's python when there is one (PYTHON overrides), and the two ways to start N
# processes. Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON=${PYTHON:-$( [[ -x "$ROOT/.venv/bin/python" ]] && echo "$ROOT/.venv/bin/python" || echo python )}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# need_args COUNT USAGE ARGS...: exit 2 with USAGE unless ARGS holds at least COUNT arguments.
need_args() {
    local count=$1 usage=$2
    shift 2
    if [[ $# -lt $count ]]; then
        echo "usage: $usage" >&2
        exit 2
    fi
}

# run_torchrun NPROC TOOL ARGS...: TOOL (tools/train.py or tools/test.py) in NPROC processes on this
# machine through torchrun. NNODES, NODE_RANK (0..NNODES-1), MASTER_ADDR (node 0's address) and PORT,
# set alike on each machine, join several machines.
run_torchrun() {
    local nproc=$1 tool=$2
    shift 2
    exec "$PYTHON" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" --nproc_per_node="$nproc" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
        "$ROOT/$tool" "$@" --launcher pytorch
}

# run_srun PARTITION JOB_NAME TOOL ARGS...: TOOL as one Slurm task per GPU through srun. GPUS (total,
# default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5) and SRUN_ARGS set the allocation.
run_srun() {
    local partition=$1 job=$2 tool=$3 gpus_per_node=${GPUS_PER_NODE:-8}
    shift 3
    # shellcheck disable=SC2086  # SRUN_ARGS holds several words
    exec srun -p "$partition" --job-name="$job" --gres=gpu:"$gpus_per_node" --ntasks="${GPUS:-8}" \
        --ntasks-per-node="$gpus_per_node" --cpus-per-task="${CPUS_PER_TASK:-5}" --kill-on-bad-exit=1 \
        ${SRUN_ARGS:-} "$PYTHON" -u "$ROOT/$tool" "$@" --launcher=slurm
}
