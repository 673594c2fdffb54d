#!/usr/bin/env bash
# Small tiny-recipe models for scripts/decoding_frontier.py (issue 27) when the converged built-in bases are not
# at hand. One thread, sequential. Usage: scripts/decoding_frontier_train.sh [OUT=runs/frontier]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/frontier}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1 PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
STEPS=${STEPS:-1000}
$PY -m paradistill.cli --threads 1 train mdlm --recipe tiny train.max_steps=$STEPS train.eval_every=0 --out $OUT/mdlm
$PY -m paradistill.cli --threads 1 train ar --recipe tiny train.max_steps=$STEPS train.eval_every=0 --out $OUT/ar
$PY -m paradistill.cli --threads 1 train bd3lm --recipe tiny --block-size 16 --init $OUT/mdlm \
    train.max_steps=$((STEPS / 3)) train.eval_every=0 --out $OUT/bd3lm
$PY -m paradistill.cli --threads 1 distill sdtt --teacher $OUT/mdlm --from-steps 64 --to-steps 16 \
    --steps-per-round $((STEPS / 5)) sdtt.lr=5e-4 sdtt.warmup_steps=20 train.eval_every=0 --out $OUT/sdtt
