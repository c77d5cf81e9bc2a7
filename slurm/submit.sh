#!/usr/bin/env bash
# Submit a sweep as a SLURM job array plus the dependent collect job, from anywhere:
#
#   PROTOCOL=normal NAME=table_normal DATA=/path/to/mnist.npz EXTRA="--steps 1000 --widths 32,64,128" \
#       slurm/submit.sh [sbatch options: --array=0-9 --partition=... --time=... --mem=...]
#
# Every setting travels in the environment (sbatch --export=ALL), so flags with commas arrive whole. Prints
# the two job ids. Resubmitting the same command runs only the digits not finished (kept: a sub-run's
# summary.json or its committed record; resumed: a started one's checkpoint).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
: "${PROTOCOL:?set PROTOCOL=normal or anomaly}" "${NAME:?set NAME, the sweep folder}" "${DATA:?set DATA}"
export PROTOCOL NAME DATA ADAE_ROOT="$root"
cd "$root"
mkdir -p slurm/logs
array=$(sbatch --parsable --export=ALL "$@" slurm/sweep.sbatch)
array=${array%%;*}
collect=$(sbatch --parsable --export=ALL --dependency=afterok:"$array" --kill-on-invalid-dep=yes slurm/collect.sbatch)
collect=${collect%%;*}
echo "array job $array, collect job $collect (after the array succeeds); logs in slurm/logs/; watch: squeue -j $array,$collect"
