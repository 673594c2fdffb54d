#!/usr/bin/env bash
# Gumbel Distillation with a BD3-LM student (block 4) on the built-in corpus -> results/gumbel_distillation/bd3lm.*
# Same recipe, steps and settings as the MDLM table (scripts/gumbel_experiment.sh): the GD-BD3LM student (perfect
# teacher, online posterior noise, dense embedding added to the MASK embedding) against a BD3-LM trained alike
# without noise; both from scratch, 1200 optimizer steps, seed 0. The two trainings run side by side (one thread
# each). Sampling: T = 1, 2, 4 steps per block (16, 32, 64 forward passes for L = 64).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
PD=.venv/bin/paradistill PY=.venv/bin/python
[ -f runs/base/bd3lm-b4/latest.json ] || $PD --threads 1 train bd3lm --recipe tiny --block-size 4 \
    --out runs/base/bd3lm-b4 train.max_steps=1200 > runs/base/bd3lm-b4.log 2>&1 &
[ -f runs/gumbel/gd-bd3lm/latest.json ] || $PD --threads 1 distill gumbel --teacher builtin-generator \
    --student bd3lm --block-size 4 --recipe tiny --out runs/gumbel/gd-bd3lm gumbel.extra_mode=add \
    train.max_steps=1200 > runs/gumbel/gd-bd3lm.log 2>&1 &
wait
$PY scripts/gumbel_eval.py --model bd3lm=runs/base/bd3lm-b4 --model gd-bd3lm=runs/gumbel/gd-bd3lm \
    --steps 1 2 4 --num 256 --batch-size 128 --seed 0 --json results/gumbel_distillation/bd3lm.json
