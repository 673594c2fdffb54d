#!/usr/bin/env bash
# SDTT re-measured on the shipped MDLM base (issue #29): builtin:mdlm as the round-1 teacher, three rounds
# 64 -> 32 -> 16 -> 8 steps (reverse KL), two round protocols x three training seeds:
#   ours       each round's teacher is the previous student's EMA weights; fresh Adam and EMA per round
#   official   the released SDTT code: the raw student is the next teacher; Adam and EMA carried across rounds
# Re-running resumes / skips. Then: python -m experiments.sdtt.on_bases (results/sdtt/on_bases/COMMAND.md).
# BASE: the MDLM (default builtin:mdlm; a run folder for an earlier base, see results/sdtt/on_bases/COMMAND.md);
# PD: the paradistill command; OUT: run folder (default runs/sdtt-bases); SEEDS (default "0 1 2");
# STEPS: optimizer steps per round (default 120).
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PD=${PD:-.venv/bin/paradistill} BASE=${BASE:-builtin:mdlm} OUT=${OUT:-runs/sdtt-bases} SEEDS=${SEEDS:-0 1 2} STEPS=${STEPS:-120}
mkdir -p "$OUT"
source experiments/common/resumable.sh
for seed in $SEEDS; do
  for protocol in paradistill official; do
    run_once sdtt-bases "$OUT/$protocol-s$seed" "$PD" --threads 1 distill sdtt --teacher "$BASE" --from-steps 64 \
        --to-steps 8 --protocol "$protocol" --steps-per-round "$STEPS" train.seed=$seed
  done
done
echo "[sdtt-bases] done: $(date -u +%H:%M:%S)"
