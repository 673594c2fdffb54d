#!/usr/bin/env bash
# Small tiny-recipe models for experiments/bench/decoding_frontier.py (issue 27) when the converged built-in bases are not
# at hand: MDLM and AR (in parallel, one thread each), then a BD3-LM (block 16, from the MDLM) and an SDTT
# student (64 -> 16 steps, two rounds, from the MDLM). Usage: STEPS=400 experiments/bench/decoding_frontier_train.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/frontier}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1 PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
STEPS=${STEPS:-400}
COMMON="train.eval_every=0 train.checkpoint_every=$STEPS"
$PY -m paradistill.cli --threads 1 train mdlm --recipe tiny train.max_steps=$STEPS $COMMON --out $OUT/mdlm &
$PY -m paradistill.cli --threads 1 train ar --recipe tiny train.max_steps=$STEPS $COMMON --out $OUT/ar &
wait
$PY -m paradistill.cli --threads 1 train bd3lm --recipe tiny --block-size 16 --init $OUT/mdlm \
    train.max_steps=$((STEPS / 3)) train.eval_every=0 --out $OUT/bd3lm &
$PY -m paradistill.cli --threads 1 distill sdtt --teacher $OUT/mdlm --from-steps 64 --to-steps 16 \
    --steps-per-round $((STEPS / 4)) sdtt.lr=5e-4 sdtt.warmup_steps=20 train.eval_every=0 --out $OUT/sdtt &
wait
