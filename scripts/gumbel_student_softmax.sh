#!/usr/bin/env bash
# Gumbel Distillation, session 9 (issue #6): the block students with the logit skip sampled at a softmax temperature
# below 1, so that more of each sample's randomness comes from the shared noise (which couples the tokens of a block)
# and less from the independent per-token draws (which do not). Noise temperature 0.5 and 1.0, softmax 0.3 / 0.5 /
# 0.7 (seed 0) and 0.3 / 0.5 (seed 1); 256 samples, seed 0. Then the entropy-matched comparison with each seed's BD3-LM
# sampled at softmax temperature 0.5-1.0 (rows of scripts/gumbel_session7.sh).
# -> results/gumbel_distillation/bd3lm_skip{,_seed1}_soft*.{json,md}, frontier_bd3lm_soft{,_seed1}.{json,md,png}
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
PY=.venv/bin/python R=results/gumbel_distillation
for T in 0.3 0.5 0.7; do
  $PY scripts/gumbel_eval.py --model gd-bd3lm-skip-soft$T=runs/gumbel/gd-bd3lm-skip --temperature $T --tune 0.5 1.0 \
      --steps 1 2 4 --num 256 --batch-size 128 --seed 0 --json $R/bd3lm_skip_soft$T.json
done
for T in 0.3 0.5; do
  $PY scripts/gumbel_eval.py --model gd-bd3lm-skip-seed1-soft$T=runs/gumbel/gd-bd3lm-skip-seed1 --temperature $T \
      --tune 0.5 1.0 --steps 1 2 4 --num 256 --batch-size 128 --seed 0 --json $R/bd3lm_skip_seed1_soft$T.json
done
$PY scripts/gumbel_frontier.py $R/bd3lm_temp0.{5,6,7,8,9}.json $R/bd3lm.json $R/bd3lm_skip.json \
    $R/bd3lm_skip_more_tau.json $R/bd3lm_skip_soft0.{3,5,7}.json \
    --series "BD3-LM, softmax temperature=bd3lm(-temp.*)?" \
    --series "GD-BD3LM + skip, softmax temperature 1=gd-bd3lm-skip( tau=.*)?" \
    --series "GD-BD3LM + skip, softmax temperature 0.3-0.7=gd-bd3lm-skip-soft.*" \
    --panel-title "T = {} steps per block" --json $R/frontier_bd3lm_soft.json --png $R/frontier_bd3lm_soft.png
$PY scripts/gumbel_frontier.py $R/bd3lm_seed1_temp0.{5,6,7,8,9}.json $R/bd3lm_skip_seed1.json \
    $R/bd3lm_skip_seed1_more_tau.json $R/bd3lm_skip_seed1_soft0.{3,5}.json \
    --series "BD3-LM seed 1, softmax temperature=bd3lm-seed1(-temp.*)?" \
    --series "GD-BD3LM + skip seed 1, softmax temperature 1=gd-bd3lm-skip-seed1( tau=.*)?" \
    --series "GD-BD3LM + skip seed 1, softmax temperature 0.3-0.5=gd-bd3lm-skip-seed1-soft.*" \
    --panel-title "T = {} steps per block" --json $R/frontier_bd3lm_soft_seed1.json \
    --png $R/frontier_bd3lm_soft_seed1.png
