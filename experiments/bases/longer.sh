#!/usr/bin/env bash
# Does a longer single schedule with more sequences bring the MDLM to the issue-29 targets (T = L slips <= 2 per
# sample, exact Gen PPL clearly within 1.5x of the AR)? Trains an MDLM from builtin:ar in one cosine schedule.
# Defaults: 30000 steps at batch 32, lr 1e-3, 16M tokens (about 4.5 h on one CPU thread).
# Today's builtin:mdlm is two 2-core runs of 2026-12-04: THREADS=2 BATCH=64 LR=0.0014 STEPS=11000 TOKENS=32000000
# from builtin:ar (results/bases/longer: 1.28x the AR at T = L, 2.20 slips; 1 h 30 min), then that model continued
# with THREADS=2 BATCH=128 LR=0.001 STEPS=5500 TOKENS=32000000 SEED=1 INIT=builtin:mdlm (results/bases/continued:
# 1.17x, 1.66 slips; 1 h 25 min).
# Re-running resumes a stopped training (checkpoints every 500 steps); a finished one is skipped.
# Then: python -m experiments.bases.compare --run longer=runs/longer/mdlm --out results/bases/NAME (against the
# shipped builtin:mdlm), and experiments.bases.evaluate on it before packing it with experiments.bases.pack.
# PD: the paradistill command (default .venv/bin/paradistill); OUT: run folder (default runs/longer);
# STEPS (default 30000); TOKENS (default 16000000); BATCH (default 32); LR (default 0.001); THREADS (default 1);
# SEED: data.seed, which documents the generator draws (default 0); INIT: continue from this MDLM checkpoint's
# weights (e.g. builtin:mdlm, a new warm-up and cosine schedule) instead of adapting builtin:ar.
set -euo pipefail
cd "$(dirname "$0")/../.."
PD=${PD:-.venv/bin/paradistill} OUT=${OUT:-runs/longer} STEPS=${STEPS:-30000} TOKENS=${TOKENS:-16000000}
BATCH=${BATCH:-32} LR=${LR:-0.001} THREADS=${THREADS:-1} SEED=${SEED:-0} INIT=${INIT:-}
if [ -n "$INIT" ]; then start=(--init "$INIT"); else start=(--init-from-ar builtin:ar); fi
export OMP_NUM_THREADS=$THREADS
mkdir -p "$OUT"
source experiments/common/resumable.sh
run_once longer "$OUT/mdlm" "$PD" --threads "$THREADS" train mdlm --recipe tiny "${start[@]}" \
    data.seed="$SEED" train.max_steps="$STEPS" train.batch_size="$BATCH" train.lr="$LR" data.num_tokens="$TOKENS" \
    train.eval_every=500 train.checkpoint_every=500
echo "[longer] done: $(date -u +%H:%M:%S)"
