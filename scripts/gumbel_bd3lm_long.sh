#!/usr/bin/env bash
# Gumbel Distillation, session 9 (issue #6): does the block student with the logit skip run more links of the
# teacher's chain with 4x more training, and does it then sample better than a BD3-LM at equal entropy?
# gd-bd3lm-skip-long (block 4, --logit-skip, tiny recipe, 4800 steps, checkpoint every 1200) against bd3lm-b4-long
# (same recipe and steps, no noise), seed 0. -> results/gumbel_distillation/bd3lm_long*.*, depth_bd3lm_long.*
# CPU, 1 thread per training; the two trainings run side by side (~75 min each).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
PD=.venv/bin/paradistill PY=.venv/bin/python R=results/gumbel_distillation
if [ "${SKIP_TRAIN:-0}" != 1 ]; then
  [ -f runs/base/bd3lm-b4-long/latest.json ] || $PD --threads 1 train bd3lm --recipe tiny --block-size 4 \
      --out runs/base/bd3lm-b4-long train.max_steps=4800 train.checkpoint_every=1200 train.keep_checkpoints=8 \
      > runs/base/bd3lm-b4-long.log 2>&1 &
  [ -f runs/gumbel/gd-bd3lm-skip-long/latest.json ] || $PD --threads 1 distill gumbel --teacher builtin-generator \
      --student bd3lm --block-size 4 --recipe tiny --logit-skip --out runs/gumbel/gd-bd3lm-skip-long \
      gumbel.extra_mode=add train.max_steps=4800 train.checkpoint_every=1200 train.keep_checkpoints=8 \
      > runs/gumbel/gd-bd3lm-skip-long.log 2>&1 &
  wait
fi
