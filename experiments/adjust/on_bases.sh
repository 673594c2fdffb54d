#!/usr/bin/env bash
# ADJUST re-measured on the shipped MDLM base (issue #29): one set of 512 one-token-per-pass trajectories of
# builtin:mdlm, then the sampler layer trained on them with three training seeds (800 steps each, recipe defaults).
# Re-running resumes / skips. Then: python -m experiments.adjust.sampler_quality per seed (see
# results/adjust/on_bases/COMMAND.md). PD: the paradistill command; OUT: run folder (default runs/adjust-bases);
# BASE: the frozen MDLM (default builtin:mdlm; a run folder for an earlier base, see that COMMAND.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PD=${PD:-.venv/bin/paradistill} BASE=${BASE:-builtin:mdlm} OUT=${OUT:-runs/adjust-bases} SEEDS=${SEEDS:-0 1 2}
mkdir -p "$OUT"
source experiments/common/resumable.sh
for seed in $SEEDS; do
  run_once adjust-bases "$OUT/s$seed" "$PD" --threads 1 distill adjust --base "$BASE" --trajectories 512 \
      --trajectories-dir "$OUT/trajectories" --steps 800 --no-progress train.seed=$seed
done
echo "[adjust-bases] done: $(date -u +%H:%M:%S)"
