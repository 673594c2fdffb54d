#!/usr/bin/env bash
# SDTT with 3x longer rounds (issue #7): 2 rounds 64 -> 32 -> 16 steps from runs/base/mdlm, 1200 optimizer steps
# per round instead of the main table's 400 (same lr 5e-4, reverse KL, EMA 0.999, batch 32). Does a longer round
# move the 16-step student toward the 64-step teacher, or lower its entropy? -> results/sdtt/long_rounds.{json,md}
# and results/sdtt/val_kl_long_rounds.json. ~30 CPU-minutes of training + ~10 of evaluation (1 thread).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
PY=${PY:-.venv/bin/python}
$PY -m paradistill.cli --threads 1 distill sdtt --teacher runs/base/mdlm --out runs/sdtt/mdlm-long --resume \
    --from-steps 64 --to-steps 16 --steps-per-round 1200 sdtt.lr=5e-4 sdtt.warmup_steps=20 train.eval_every=0
$PY scripts/sdtt_eval.py --teacher runs/base/mdlm --run runs/sdtt/mdlm-long --teacher-steps 16 32 64 --num 128 \
    --label "MDLM teacher" --judge runs/base/ar --json results/sdtt/long_rounds.json
$PY scripts/sdtt_val_kl.py --run runs/sdtt/mdlm-long --teacher runs/base/mdlm --json results/sdtt/val_kl_long_rounds.json
$PY scripts/sdtt_table.py results/sdtt/long_rounds.json results/sdtt/val_kl_long_rounds.json \
    --out results/sdtt/long_rounds.md
