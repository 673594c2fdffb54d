#!/usr/bin/env bash
# ADJUST on a deeper base (issue #8): the sampler pass is one block, so its cost relative to a full pass falls
# with the base's depth. Same `tiny` recipe as runs/base/mdlm but 8 layers instead of 4 (3.6M parameters),
# then the default and the MLP-ratio-2 samplers, evaluated and timed like results/adjust -> results/adjust/deep8.
# CPU, one thread per job. Skips what is already there.
set -euo pipefail
export OMP_NUM_THREADS=1 PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
PD=.venv/bin/paradistill PY=.venv/bin/python
BASE=runs/base/mdlm-8l OUT=results/adjust/deep8
[ -f $BASE/latest.json ] || $PD --threads 1 train mdlm --recipe tiny --out $BASE train.max_steps=1200 model.n_layers=8
[ -f runs/adjust/deep8/latest.json ] || $PD --threads 1 distill adjust --base $BASE --out runs/adjust/deep8 \
    --trajectories 384 --steps 800 train.log_every=20
[ -f runs/adjust/deep8-mlp2/latest.json ] || $PD --threads 1 distill adjust --base $BASE --out runs/adjust/deep8-mlp2 \
    --trajectories 384 --trajectories-dir runs/adjust/deep8/trajectories --steps 800 adjust.mlp_ratio=2
$PY scripts/adjust_eval.py --base $BASE --adjust runs/adjust/deep8 --ks 2 4 8 --num 128 --batch-size 64 \
    --threshold 2.0 --out $OUT
$PY scripts/adjust_eval.py --base $BASE --adjust runs/adjust/deep8-mlp2 --ks 4 8 --num 128 --batch-size 64 \
    --out $OUT/mlp2
$PY scripts/adjust_timing.py --base $BASE --adjust adjust=runs/adjust/deep8 --adjust adjust-mlp2=runs/adjust/deep8-mlp2 \
    --ks 4 8 --reps 3 --out $OUT/timing.json
