#!/usr/bin/env bash
# Sanity check of `paradistill eval` on the built-in corpus (results/eval_sanity/):
#  1. samples drawn from the exact generator score exact Gen PPL ~ exp(entropy rate) (inside the 95% CI);
#  2. the trained MDLM (runs/base/mdlm) at 8 ancestral steps scores worse than at 32 and 128 steps;
#  3. the AR base model as a reference point; Gen PPL under the AR judge, MAUVE vs held-out data, val PPL.
# Run from the repository root after runs/base/{ar,mdlm} are trained (tiny recipe). ~5 CPU-minutes, 1 thread.
set -euo pipefail
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 PARADISTILL_CACHE="${PARADISTILL_CACHE:-.cache/data}"
R=results/eval_sanity
S=runs/eval_sanity  # samples (git-ignored)
PD="paradistill --threads 1"
COMMON="--num 128 --batch-size 32 --seed 0 --judge runs/base/ar --reference val --mauve-features minilm"

$PD eval generator --num 1024 --length 64 --seed 0 --out $R/generator.json
for steps in 8 32 128; do
  extra=""
  if [ "$steps" = 128 ]; then extra="--metrics exact,gen_ppl,entropy,distinct,mauve,val_ppl"; fi
  $PD eval runs/base/mdlm --sampler ancestral --steps $steps $COMMON $extra \
      --out $R/mdlm_ancestral_s$steps.json --samples-out $S/mdlm_ancestral_s$steps.samples.jsonl
done
$PD eval runs/base/ar $COMMON --metrics exact,gen_ppl,entropy,distinct,mauve,val_ppl \
    --out $R/ar.json --samples-out $S/ar.samples.jsonl
$PD report $R --out $R
