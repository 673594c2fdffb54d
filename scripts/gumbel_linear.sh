#!/usr/bin/env bash
# Session 8: the paper's noise pathway with the raw noise instead of its softmax (`--embed linear`:
# e = W (xi - mean xi) / s), GD-MDLM, seeds 0 and 1, same recipe as gd-mdlm -> results/gumbel_distillation/linear*.
# Question: is the published embedding unused here because softmax(xi) hides the noise at the teacher's plausible
# tokens (noise_info.md)? ~10 CPU-minutes per student (one thread), ~4 for the noise map, ~6 for the evaluations;
# the 4800-step run and its curve ~30 more.
set -euo pipefail
export OMP_NUM_THREADS=1 PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
PD=.venv/bin/paradistill
PY=.venv/bin/python
R=results/gumbel_distillation
for s in 0 1; do
  out=runs/gumbel/gd-mdlm-linear$([ $s = 0 ] || echo "-seed$s")
  [ -f $out/latest.json ] || $PD --threads 1 distill gumbel --teacher builtin-generator --student mdlm --recipe tiny \
      --embed linear --out $out gumbel.extra_mode=add train.max_steps=1200 train.seed=$s
done
# does it follow the noise at inference? (local agreement against its chance level; MDLMs of the same seeds)
$PY scripts/gumbel_noise_map.py --model mdlm=runs/base/mdlm --model gd-mdlm-linear=runs/gumbel/gd-mdlm-linear \
    --model mdlm-seed1=runs/base/mdlm-seed1 --model gd-mdlm-linear-seed1=runs/gumbel/gd-mdlm-linear-seed1 \
    --steps 8 16 --first-hitting --num 128 --json $R/noise_map_linear.json
# noise temperature chosen on seed-1 samples of the seed-0 student (not the reported samples)
$PY scripts/gumbel_eval.py --model gd-mdlm-linear=runs/gumbel/gd-mdlm-linear --tune 0.5 0.7 0.85 1.0 1.2 --steps 8 16 \
    --num 64 --seed 1 --json $R/tune_linear.json
# exact Gen PPL against the MDLM of the same seed (rows reused from main.json / seed1.json), 256 samples, seed 0
$PY scripts/gumbel_eval.py --reuse mdlm=$R/main.json --model gd-mdlm-linear=runs/gumbel/gd-mdlm-linear \
    --noise-temperature 0.7 --steps 4 8 16 32 --first-hitting --num 256 --batch-size 128 --seed 0 --json $R/linear_seed0.json
$PY scripts/gumbel_eval.py --reuse mdlm-seed1=$R/seed1.json --model gd-mdlm-linear-seed1=runs/gumbel/gd-mdlm-linear-seed1 \
    --noise-temperature 0.7 --steps 4 8 16 32 --first-hitting --num 256 --batch-size 128 --seed 0 --json $R/linear_seed1.json
# 4x longer (4800 steps, a checkpoint every 1200; 2 threads, ~20 minutes alone): does following the noise turn into
# better samples with training? Local agreement per checkpoint, then exact Gen PPL of the last one (256 samples)
[ -f runs/gumbel/gd-mdlm-linear-long/latest.json ] || $PD --threads 2 distill gumbel --teacher builtin-generator \
    --student mdlm --recipe tiny --embed linear --out runs/gumbel/gd-mdlm-linear-long gumbel.extra_mode=add \
    train.max_steps=4800 train.checkpoint_every=1200 train.keep_checkpoints=8
$PY scripts/gumbel_learning_curve.py --run gd-mdlm-linear-long=runs/gumbel/gd-mdlm-linear-long --run mdlm=runs/base/mdlm \
    --steps 16 --first-hitting --num 128 --json $R/learning_curve_linear.json --png $R/learning_curve_linear.png
$PY scripts/gumbel_eval.py --model gd-mdlm-linear-long=runs/gumbel/gd-mdlm-linear-long --tune 0.5 0.7 0.85 1.0 --steps 8 16 \
    --num 64 --seed 1 --json $R/tune_linear_long.json  # 0.7 best at T = 16
$PY scripts/gumbel_eval.py --reuse mdlm=$R/main.json --model gd-mdlm-linear-long=runs/gumbel/gd-mdlm-linear-long \
    --noise-temperature 0.7 --steps 4 8 16 32 --first-hitting --num 256 --batch-size 128 --seed 0 --json $R/linear_long.json
# the same-steps baseline: gd-mdlm-long (softmax embedding, 4800 steps; its noise is never used: learning_curve.md),
# at softmax temperature 1 / 0.9 / 0.8 (entropy-matched reading)
$PY scripts/gumbel_eval.py --reuse mdlm=$R/main.json --model gd-mdlm-long=runs/gumbel/gd-mdlm-long --steps 4 8 16 32 \
    --first-hitting --num 256 --batch-size 128 --seed 0 --json $R/softmax_long.json
for T in 0.8 0.9; do
  $PY scripts/gumbel_eval.py --model gd-mdlm-long-temp$T=runs/gumbel/gd-mdlm-long --temperature $T --steps 4 8 16 32 \
      --first-hitting --num 256 --batch-size 128 --seed 0 --json $R/softmax_long_temp$T.json
done
# and an MDLM trained 4800 steps (same recipe; 2 threads, ~18 minutes), at softmax temperature 1 and 0.8
[ -f runs/base/mdlm-long/latest.json ] || $PD --threads 2 train mdlm --recipe tiny --out runs/base/mdlm-long \
    train.max_steps=4800 train.checkpoint_every=1200 train.keep_checkpoints=8
for T in 1.0 0.8; do
  $PY scripts/gumbel_eval.py --model mdlm-long-temp$T=runs/base/mdlm-long --temperature $T --steps 4 8 16 32 \
      --first-hitting --num 256 --batch-size 128 --seed 0 --json $R/mdlm_long_temp$T.json
done
