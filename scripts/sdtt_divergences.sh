#!/usr/bin/env bash
# SDTT divergence ablation (issue #7): round 1 (64 -> 32 steps) from runs/base/mdlm with each of the four
# divergences, same settings as scripts/sdtt_experiment.sh (400 optimizer steps, lr 5e-4); the reverse-KL row is
# round 1 of runs/sdtt/mdlm. Evaluated at 32 steps (128 samples, exact Gen PPL) and by the validation objective.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
PY=${PY:-.venv/bin/python}
COMMON="--from-steps 64 --to-steps 32 --steps-per-round 400 sdtt.lr=5e-4 sdtt.warmup_steps=20 train.eval_every=0"
for DIV in forward_kl mse tv; do
  $PY -m paradistill.cli --threads 1 distill sdtt --teacher runs/base/mdlm --out runs/sdtt/div-$DIV --resume \
      --divergence $DIV $COMMON
  $PY scripts/sdtt_eval.py --teacher runs/base/mdlm --run runs/sdtt/div-$DIV --teacher-steps 32 64 --num 128 \
      --label "MDLM teacher" --judge runs/base/ar --json results/sdtt/divergence_$DIV.json
  $PY scripts/sdtt_val_kl.py --run runs/sdtt/div-$DIV --teacher runs/base/mdlm --json results/sdtt/val_kl_div-$DIV.json
done
$PY scripts/sdtt_table.py results/sdtt/divergence_{forward_kl,mse,tv}.json results/sdtt/val_kl_div-{forward_kl,mse,tv}.json \
    --out results/sdtt/divergences.md
