#!/usr/bin/env bash
# ADJUST re-measured on the shipped MDLM base (issue #29): one set of 512 one-token-per-pass trajectories of
# builtin:mdlm, then the sampler layer trained on them with three training seeds (800 steps each, recipe defaults).
# Re-running resumes / skips. Then: python -m experiments.adjust.sampler_quality per seed (see
# results/adjust/on_bases/COMMAND.md). PD: the paradistill command; OUT: run folder (default runs/adjust-bases).
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PD=${PD:-.venv/bin/paradistill} OUT=${OUT:-runs/adjust-bases} SEEDS=${SEEDS:-0 1 2}
mkdir -p "$OUT"
for seed in $SEEDS; do
  run="$OUT/s$seed"
  grep -q '"final": true' "$run/latest.json" 2>/dev/null && continue
  resume=(); [ -f "$run/latest.json" ] && resume=(--resume)
  echo "[adjust-bases] seed $seed: $(date -u +%H:%M:%S)"
  "$PD" --threads 1 distill adjust --base builtin:mdlm --out "$run" "${resume[@]}" --trajectories 512 \
      --trajectories-dir "$OUT/trajectories" --steps 800 --no-progress train.seed=$seed >> "$run.log" 2>&1
done
echo "[adjust-bases] done: $(date -u +%H:%M:%S)"
