#!/usr/bin/env bash
# Train the bases shipped in src/paradistill/bases/ (tiny recipe: 4 layers x 192, 1.85M parameters, L = 64, the
# built-in corpus), one training per CPU thread. Re-running resumes a stopped training; finished ones are skipped.
#   ar-stage1      500 steps from scratch (lr 2e-3)
#   ar             800 more steps from ar-stage1 (lr 1e-3, warm-up 20)                       -> builtin:ar
#   mdlm         15000 steps initialised from the AR (AR -> MDLM adaptation, unshifted), one cosine schedule at
#                 lr 1e-3 on 8M train tokens                                                 -> builtin:mdlm
#   bd3lm-b4       800 steps, block 4, initialised from the AR
#   bd3lm-b16      600 steps, block 16, initialised from the AR                                -> builtin:bd3lm-b16
#   bd3lm-b4-long  5000 more steps from bd3lm-b4's (EMA) weights, lr 1e-3, 8M train tokens     -> builtin:bd3lm-b4
# (the adaptation study against from-scratch MDLMs is experiments/bases/adaptation.sh)
# Then: python -m experiments.bases.pack --runs "$OUT"; python -m experiments.bases.evaluate; python -m
# experiments.bases.curves (see results/bases/COMMAND.md).
# PD: the paradistill command (default .venv/bin/paradistill); OUT: run folder (default runs/bases).
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PD=${PD:-.venv/bin/paradistill} OUT=${OUT:-runs/bases}
mkdir -p "$OUT"
source experiments/common/resumable.sh
train() {  # name kind args...
  local name=$1 kind=$2; shift 2
  run_once bases "$OUT/$name" "$PD" --threads 1 train "$kind" --recipe tiny "$@"
}
train ar-stage1 ar train.max_steps=500 train.eval_every=100 train.checkpoint_every=100
train ar ar --init "$OUT/ar-stage1" train.max_steps=800 train.warmup_steps=20 train.lr=0.001 \
    train.eval_every=200 train.checkpoint_every=200
# the two chains below are independent: run them side by side on a 2-core machine
( train mdlm mdlm --init-from-ar "$OUT/ar" train.max_steps=15000 train.lr=0.001 data.num_tokens=8000000 \
      train.eval_every=500 train.checkpoint_every=500 ) &
( train bd3lm-b4 bd3lm --block-size 4 --init-from-ar "$OUT/ar" train.max_steps=800 train.eval_every=200 \
      train.checkpoint_every=200
  train bd3lm-b16 bd3lm --block-size 16 --init-from-ar "$OUT/ar" train.max_steps=600 train.eval_every=200 \
      train.checkpoint_every=200 ) &
wait
# stage 2: longer training of the BD3-LM B = 4 (its validation NELBO was still falling)
long=(train.lr=0.001 data.num_tokens=8000000 train.eval_every=500 train.checkpoint_every=500)
train bd3lm-b4-long bd3lm --block-size 4 --init "$OUT/bd3lm-b4" train.max_steps=5000 "${long[@]}"
echo "[bases] done: $(date -u +%H:%M:%S)"
