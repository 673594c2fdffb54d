#!/usr/bin/env bash
# AR -> MDLM adaptation against a from-scratch MDLM (issue #29's target: the AR-initialised run reaches the
# from-scratch run's final validation NELBO in <= 1/4 of its optimizer steps), same tiny recipe, per seed:
#   scratch-s$seed        1000 steps from random weights                                     (the reference)
#   shift-s$seed           250 steps from builtin:ar, shifted (Dream) convention, attention annealed causal ->
#                          bidirectional over the first 50 steps
#   unshifted-s$seed       250 steps from builtin:ar, unshifted, no annealing (seed 0 only: the arm that fell short)
# Each run is a whole training with its own warm-up and cosine schedule. Re-running resumes / skips.
# Then: python -m experiments.bases.curves (results/bases/COMMAND.md).
# PD: the paradistill command; OUT: run folder (default runs/adaptation); SEEDS (default "0 1 2 3 4").
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PD=${PD:-.venv/bin/paradistill} OUT=${OUT:-runs/adaptation} SEEDS=${SEEDS:-0 1 2 3 4}
mkdir -p "$OUT"
source experiments/common/resumable.sh
train() { "$PD" --threads 1 train mdlm --recipe tiny "$@"; }
run_once adaptation "$OUT/unshifted-s0" train --init-from-ar builtin:ar train.max_steps=250 train.eval_every=25 \
    train.checkpoint_every=250
for seed in $SEEDS; do
  run_once adaptation "$OUT/shift-s$seed" train --init-from-ar builtin:ar train.max_steps=250 train.eval_every=25 \
      train.checkpoint_every=250 adapt.shift=true adapt.anneal_steps=50 train.seed=$seed
done
for seed in $SEEDS; do
  run_once adaptation "$OUT/scratch-s$seed" train train.max_steps=1000 train.eval_every=50 train.checkpoint_every=250 \
      train.seed=$seed
done
echo "[adaptation] done: $(date -u +%H:%M:%S)"
