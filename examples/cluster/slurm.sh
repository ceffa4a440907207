#!/usr/bin/env bash
# A study's workers as a Slurm array job: N tasks, each a `reglab worker` on its own node, with no
# shared folder but the artifact store. The study is created once, beforehand, from any machine:
#   reglab study run examples/ablation.yaml --storage "$REGLAB_STORAGE" --store "$REGLAB_STORE" --workers 0
# then:
#   sbatch --array=1-8 --export=ALL,REGLAB_STORAGE=postgresql://user:pass@db-host/reglab,REGLAB_STORE=/mnt/store,STUDY=ablation \
#       examples/cluster/slurm.sh
# Each task joins the queue, trains waiting runs until none is left, and exits; a task that dies
# (preempted, node lost) leaves a trial whose heartbeat goes stale, which another task runs again.
# The recipe's data paths are read on each node from its own folder: give them absolute (a path
# every node mounts), e.g. reglab study run … data.path=/mnt/datasets/typefaces/train.
# Watch: optuna-dashboard "$REGLAB_STORAGE". Table and report, anywhere:
#   reglab study show --storage "$REGLAB_STORAGE" --study "$STUDY" && reglab report "studies/$STUDY"
#SBATCH --job-name=reglab-worker
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=12:00:00
#SBATCH --output=reglab-worker-%A_%a.log
set -euo pipefail
: "${REGLAB_STORAGE:?set REGLAB_STORAGE to the study's storage URL}"
: "${STUDY:?set STUDY to the study's name}"
WORKDIR="${SLURM_TMPDIR:-${TMPDIR:-/tmp}}/reglab-${SLURM_ARRAY_JOB_ID:-0}-${SLURM_ARRAY_TASK_ID:-0}"
mkdir -p "$WORKDIR"
cd "$WORKDIR"  # this node's own runs folder: each finished run is archived in the store the study names
exec reglab worker --storage "$REGLAB_STORAGE" --study "$STUDY" --threads "${SLURM_CPUS_PER_TASK:-0}" --quiet
