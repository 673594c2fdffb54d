#!/usr/bin/env bash
# Gumbel Distillation, session 9 (issue #6): how deep a piece of the teacher's sequential noise -> text map do the
# students run inside one forward pass, and how deep is the map? -> results/gumbel_distillation/depth{,_bd3lm}.*
# No training: the checkpoints of sessions 5-8 (scripts/gumbel_experiment.sh, gumbel_bd3lm.sh, gumbel_logit_skip.sh,
# gumbel_session7.sh, gumbel_linear.sh). CPU, one thread per process; the two can run side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
PY=.venv/bin/python R=results/gumbel_distillation
$PY scripts/gumbel_depth.py --num 64 --model mdlm=runs/base/mdlm --model mdlm-seed1=runs/base/mdlm-seed1 \
    --model gd-mdlm=runs/gumbel/gd-mdlm --model gd-mdlm-skip=runs/gumbel/gd-mdlm-skip \
    --model gd-mdlm-skip-seed1=runs/gumbel/gd-mdlm-skip-seed1 --model gd-mdlm-linear=runs/gumbel/gd-mdlm-linear \
    --model gd-mdlm-linear-seed1=runs/gumbel/gd-mdlm-linear-seed1 --model mdlm-long=runs/base/mdlm-long \
    --model gd-mdlm-long=runs/gumbel/gd-mdlm-long --model gd-mdlm-linear-long=runs/gumbel/gd-mdlm-linear-long \
    --json $R/depth.json --png $R/depth.png &
$PY scripts/gumbel_depth.py --num 64 --depths 0 1 2 3 --model bd3lm=runs/base/bd3lm-b4 \
    --model bd3lm-seed1=runs/base/bd3lm-b4-seed1 --model gd-bd3lm=runs/gumbel/gd-bd3lm \
    --model gd-bd3lm-skip=runs/gumbel/gd-bd3lm-skip --model gd-bd3lm-skip-seed1=runs/gumbel/gd-bd3lm-skip-seed1 \
    --json $R/depth_bd3lm.json --png $R/depth_bd3lm.png
wait
