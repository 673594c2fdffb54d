#!/usr/bin/env bash
# Gumbel Distillation on the built-in corpus -> results/gumbel_distillation/ (CPU, 1 thread).
# The baseline runs/base/mdlm is `paradistill --threads 1 train mdlm --recipe tiny --out runs/base/mdlm`
# (same recipe, architecture, 1200 optimizer steps, batch 32, lr 2e-3, seed 0 as the student below).
set -euo pipefail
export OMP_NUM_THREADS=1 PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
PY=.venv/bin/python
[ -f runs/base/mdlm/latest.json ] || .venv/bin/paradistill --threads 1 train mdlm --recipe tiny --out runs/base/mdlm train.max_steps=1200
# GD-MDLM student: perfect teacher (the corpus's exact generator), online posterior noise, dense W softmax(xi)
# embedding added to the MASK embedding (extra_mode=add, zero-initialised projection).
.venv/bin/paradistill --threads 1 distill gumbel --teacher builtin-generator --student mdlm --recipe tiny \
    --out runs/gumbel/gd-mdlm gumbel.extra_mode=add train.max_steps=1200
# ablations, same recipe and steps: uninformative Gaussian noise; top-k (32) sparse projection of softmax(xi)
.venv/bin/paradistill --threads 1 distill gumbel --teacher builtin-generator --student mdlm --recipe tiny \
    --out runs/gumbel/gd-mdlm-gaussian gumbel.extra_mode=add gumbel.noise=gaussian train.max_steps=1200
.venv/bin/paradistill --threads 1 distill gumbel --teacher builtin-generator --student mdlm --recipe tiny \
    --out runs/gumbel/gd-mdlm-topk gumbel.extra_mode=add gumbel.embed=topk train.max_steps=1200
# seed-to-seed spread of the baseline: the same MDLM with train.seed=1
[ -f runs/base/mdlm-seed1/latest.json ] || .venv/bin/paradistill --threads 1 train mdlm --recipe tiny \
    --out runs/base/mdlm-seed1 train.max_steps=1200 train.seed=1
# the same student and Gaussian ablation with train.seed=1, compared with the seed-1 MDLM (paired seeds)
.venv/bin/paradistill --threads 1 distill gumbel --teacher builtin-generator --student mdlm --recipe tiny \
    --out runs/gumbel/gd-mdlm-seed1 gumbel.extra_mode=add train.max_steps=1200 train.seed=1
.venv/bin/paradistill --threads 1 distill gumbel --teacher builtin-generator --student mdlm --recipe tiny \
    --out runs/gumbel/gd-mdlm-gaussian-seed1 gumbel.extra_mode=add gumbel.noise=gaussian train.max_steps=1200 train.seed=1
# a third paired seed (session 6): MDLM and GD-MDLM with train.seed=2
[ -f runs/base/mdlm-seed2/latest.json ] || .venv/bin/paradistill --threads 1 train mdlm --recipe tiny \
    --out runs/base/mdlm-seed2 train.max_steps=1200 train.seed=2
[ -f runs/gumbel/gd-mdlm-seed2/latest.json ] || .venv/bin/paradistill --threads 1 distill gumbel \
    --teacher builtin-generator --student mdlm --recipe tiny --out runs/gumbel/gd-mdlm-seed2 gumbel.extra_mode=add \
    train.max_steps=1200 train.seed=2
# noise temperature, chosen on seed 1 (not the reported samples)
$PY scripts/gumbel_eval.py --model gd-mdlm=runs/gumbel/gd-mdlm --tune 0.5 0.7 0.85 1.0 --steps 8 16 --num 64 \
    --seed 1 --json results/gumbel_distillation/tune_noise_temperature.json
# main table: seed 0, 256 samples per setting
$PY scripts/gumbel_eval.py --model mdlm=runs/base/mdlm --model gd-mdlm=runs/gumbel/gd-mdlm \
    --model mdlm-seed1=runs/base/mdlm-seed1 --steps 4 8 16 32 --first-hitting --num 256 --batch-size 128 --seed 0 \
    --json results/gumbel_distillation/main.json
$PY scripts/gumbel_eval.py --model mdlm=runs/base/mdlm --model gd-gaussian=runs/gumbel/gd-mdlm-gaussian \
    --model gd-topk=runs/gumbel/gd-mdlm-topk --steps 4 8 16 32 --first-hitting --num 256 --batch-size 128 --seed 0 \
    --json results/gumbel_distillation/ablations.json
$PY scripts/gumbel_eval.py --model mdlm-seed1=runs/base/mdlm-seed1 --model gd-mdlm-seed1=runs/gumbel/gd-mdlm-seed1 \
    --model gd-gaussian-seed1=runs/gumbel/gd-mdlm-gaussian-seed1 --steps 4 8 16 32 --first-hitting --num 256 \
    --batch-size 128 --seed 0 --json results/gumbel_distillation/seed1.json
$PY scripts/gumbel_eval.py --model mdlm-seed2=runs/base/mdlm-seed2 --model gd-mdlm-seed2=runs/gumbel/gd-mdlm-seed2 \
    --steps 4 8 16 32 --first-hitting --num 256 --batch-size 128 --seed 0 --json results/gumbel_distillation/seed2.json
# extraction benchmark (V = 50257, L = 128, batch 8)
$PY scripts/bench_gumbel_extraction.py --out results/gumbel_extraction
