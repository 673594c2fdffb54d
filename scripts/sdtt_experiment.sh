#!/usr/bin/env bash
# SDTT reproduction on the built-in corpus (results/sdtt/). Usage: scripts/sdtt_experiment.sh [mdlm|gd|all]
# Teacher: runs/base/mdlm (`paradistill train mdlm --out runs/base/mdlm`, tiny recipe); GD student:
# runs/gumbel/gd-mdlm (`paradistill distill gumbel --teacher builtin-generator --student mdlm --out runs/gumbel/gd-mdlm`).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
PY=${PY:-.venv/bin/python}
WHAT=${1:-all}
STEPS=${SDTT_STEPS_PER_ROUND:-400}
COMMON="--from-steps 64 --to-steps 8 --steps-per-round $STEPS sdtt.lr=5e-4 sdtt.warmup_steps=20 train.eval_every=0"

if [[ $WHAT == mdlm || $WHAT == all ]]; then
  $PY -m paradistill.cli --threads 1 distill sdtt --teacher runs/base/mdlm --out runs/sdtt/mdlm --resume $COMMON
  $PY scripts/sdtt_eval.py --teacher runs/base/mdlm --run runs/sdtt/mdlm --teacher-steps 8 16 32 64 128 \
      --num 128 --label "MDLM teacher" --judge runs/base/ar --samples-dir runs/sdtt/mdlm/samples --json results/sdtt/mdlm.json
  $PY scripts/sdtt_val_kl.py --run runs/sdtt/mdlm --teacher runs/base/mdlm --json results/sdtt/val_kl_mdlm.json
  $PY scripts/sdtt_headroom.py --run runs/sdtt/mdlm --teacher runs/base/mdlm --batches 4 --draws 64 \
      --json results/sdtt/headroom_mdlm.json
fi
if [[ $WHAT == gd || $WHAT == all ]]; then
  $PY -m paradistill.cli --threads 1 distill sdtt --teacher runs/gumbel/gd-mdlm --out runs/sdtt/gd-mdlm --resume $COMMON
  $PY scripts/sdtt_eval.py --teacher runs/gumbel/gd-mdlm --run runs/sdtt/gd-mdlm --teacher-steps 8 16 32 64 128 \
      --num 128 --label "GD-MDLM teacher" --judge runs/base/ar --samples-dir runs/sdtt/gd-mdlm/samples --json results/sdtt/gd-mdlm.json
  $PY scripts/sdtt_val_kl.py --run runs/sdtt/gd-mdlm --teacher runs/gumbel/gd-mdlm --json results/sdtt/val_kl_gd-mdlm.json
  $PY scripts/sdtt_headroom.py --run runs/sdtt/gd-mdlm --teacher runs/gumbel/gd-mdlm --batches 4 --draws 64 \
      --json results/sdtt/headroom_gd-mdlm.json
fi
$PY scripts/sdtt_table.py results/sdtt/{gd-mdlm,headroom_gd-mdlm,headroom_mdlm,mdlm,val_kl_gd-mdlm,val_kl_mdlm}.json \
    --out results/sdtt/table.md
