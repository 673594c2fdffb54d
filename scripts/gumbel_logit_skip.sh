#!/usr/bin/env bash
# Gumbel Distillation with the optional logit skip (gumbel.logit_skip=true: logits += gate(h) * xi at masked
# positions) -> results/gumbel_distillation/logit_skip.{json,md} and tune_logit_skip.{json,md}. CPU, 1 thread.
# Same recipe, teacher and noise as gd-mdlm (scripts/gumbel_experiment.sh), seeds 0 and 1; the baselines' rows
# (runs/base/mdlm, runs/base/mdlm-seed1) are reused from main.json / seed1.json (same 256 samples, seed 0).
set -euo pipefail
export OMP_NUM_THREADS=1 PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
PY=.venv/bin/python
R=results/gumbel_distillation
# is the noise informative? masked NLL of the MDLM with beta * xi added to its logits (no training)
$PY scripts/gumbel_skip_probe.py runs/base/mdlm --json $R/skip_probe.json
for s in 0 1; do
  run=runs/gumbel/gd-mdlm-skip$([ $s = 0 ] || echo -seed$s)
  [ -f $run/latest.json ] || .venv/bin/paradistill --threads 1 distill gumbel --teacher builtin-generator \
      --student mdlm --recipe tiny --logit-skip --out $run gumbel.extra_mode=add train.max_steps=1200 train.seed=$s
done
# noise temperature on seed-1 samples (not the reported ones), both students
$PY scripts/gumbel_eval.py --model gd-mdlm-skip=runs/gumbel/gd-mdlm-skip \
    --model gd-mdlm-skip-seed1=runs/gumbel/gd-mdlm-skip-seed1 --tune 0.1 0.25 0.5 0.7 0.85 1.0 --steps 8 16 \
    --num 64 --seed 1 --json $R/tune_logit_skip.json
# reported: seed 0 samples, 256 per row, at the tuned temperature (0.1) and the method's default (0.85)
$PY scripts/gumbel_eval.py --reuse mdlm=$R/main.json --model gd-mdlm-skip=runs/gumbel/gd-mdlm-skip --tune 0.1 0.85 \
    --steps 4 8 16 32 --first-hitting --num 256 --batch-size 128 --seed 0 --json $R/logit_skip_seed0.json
$PY scripts/gumbel_eval.py --reuse mdlm-seed1=$R/seed1.json --model gd-mdlm-skip-seed1=runs/gumbel/gd-mdlm-skip-seed1 \
    --tune 0.1 0.85 --steps 4 8 16 32 --first-hitting --num 256 --batch-size 128 --seed 0 --json $R/logit_skip_seed1.json
# does a student follow the noise at inference? agreement of its samples with the teacher's x* = f(xi)
$PY scripts/gumbel_noise_map.py --model mdlm=runs/base/mdlm --model gd-mdlm=runs/gumbel/gd-mdlm \
    --model gd-mdlm-seed1=runs/gumbel/gd-mdlm-seed1 --model gd-mdlm-skip=runs/gumbel/gd-mdlm-skip \
    --model gd-mdlm-skip-seed1=runs/gumbel/gd-mdlm-skip-seed1 --steps 8 16 --first-hitting --num 128 \
    --json $R/noise_map.json
