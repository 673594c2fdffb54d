#!/usr/bin/env bash
# Gumbel Distillation, session 9 (issue #6): does the block student with the logit skip run more links of the
# teacher's chain with 4x more training, and does it then sample better than a BD3-LM at equal entropy?
# gd-bd3lm-skip-long (block 4, --logit-skip, tiny recipe, 4800 steps, checkpoint every 1200) against bd3lm-b4-long
# (same recipe and steps, no noise). SEED=0 (default) or SEED=1 (run dirs, labels and outputs get a -seed1 /
# _seed1 suffix). -> results/gumbel_distillation/{depth_,frontier_}bd3lm_long*.*, bd3lm_{long_temp*,skip_long*}.*
# CPU, 1 thread per training; the two trainings run side by side (~75 min each). A stopped training resumes from
# its last checkpoint when the script is run again. SKIP_TRAIN=1: evaluate only.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
PD=.venv/bin/paradistill PY=.venv/bin/python R=results/gumbel_distillation
SEED=${SEED:-0}
if [ "$SEED" = 0 ]; then S_=; F_=; else S_=-seed$SEED; F_=_seed$SEED; fi
B=runs/base/bd3lm-b4-long$S_ G=runs/gumbel/gd-bd3lm-skip-long$S_
state() {  # final | partial | none
  if grep -q '"final": true' "$1/latest.json" 2>/dev/null; then echo final
  elif [ -f "$1/latest.json" ]; then echo partial; else echo none; fi
}
resume() { [ "$(state "$1")" = partial ] && echo --resume || true; }
if [ "${SKIP_TRAIN:-0}" != 1 ]; then
  [ "$(state $B)" = final ] || $PD --threads 1 train bd3lm --recipe tiny --block-size 4 --out $B $(resume $B) \
      train.max_steps=4800 train.checkpoint_every=1200 train.keep_checkpoints=8 train.seed=$SEED >> $B.log 2>&1 &
  [ "$(state $G)" = final ] || $PD --threads 1 distill gumbel --teacher builtin-generator --student bd3lm \
      --block-size 4 --recipe tiny --logit-skip --out $G $(resume $G) gumbel.extra_mode=add train.max_steps=4800 \
      train.checkpoint_every=1200 train.keep_checkpoints=8 train.seed=$SEED >> $G.log 2>&1 &
  wait
fi
C=$G/checkpoints
# links of the chain run by the student at every kept checkpoint (chance: the BD3-LM trained as long)
$PY scripts/gumbel_depth.py --num 64 --depths 0 1 2 3 --model bd3lm-long$S_=$B \
    --model gd-bd3lm-skip-long$S_@1200=$C/step_0001200 --model gd-bd3lm-skip-long$S_@2400=$C/step_0002400 \
    --model gd-bd3lm-skip-long$S_@3600=$C/step_0003600 --model gd-bd3lm-skip-long$S_@4800=$C/step_0004800 \
    --json $R/depth_bd3lm_long$F_.json --png $R/depth_bd3lm_long$F_.png
# samples (256, seed 0, T = 1/2/4 steps per block): the BD3-LM at softmax temperature 0.5-1.0, the student at noise
# temperature 0.25-1.0 (softmax 1) and at softmax 0.5 (noise 1); every point is reported, none is selected
for T in 0.5 0.6 0.7 0.8 0.9 1.0; do
  $PY scripts/gumbel_eval.py --model bd3lm-long$S_-temp$T=$B --temperature $T --steps 1 2 4 \
      --num 256 --batch-size 128 --seed 0 --json $R/bd3lm_long${F_}_temp$T.json
done
$PY scripts/gumbel_eval.py --model gd-bd3lm-skip-long$S_=$G --tune 0.25 0.5 0.85 1.0 \
    --steps 1 2 4 --num 256 --batch-size 128 --seed 0 --json $R/bd3lm_skip_long$F_.json
$PY scripts/gumbel_eval.py --model gd-bd3lm-skip-long$S_-soft0.5=$G --temperature 0.5 \
    --tune 1.0 --steps 1 2 4 --num 256 --batch-size 128 --seed 0 --json $R/bd3lm_skip_long${F_}_soft0.5.json
$PY scripts/gumbel_frontier.py $R/bd3lm_long${F_}_temp{0.5,0.6,0.7,0.8,0.9,1.0}.json $R/bd3lm_skip_long$F_.json \
    $R/bd3lm_skip_long${F_}_soft0.5.json --series "BD3-LM 4800 steps$S_, softmax temperature=bd3lm-long$S_-temp.*" \
    --series "GD-BD3LM + skip 4800 steps$S_, noise temperature=gd-bd3lm-skip-long$S_( tau=.*)?" \
    --series "same, softmax temperature 0.5=gd-bd3lm-skip-long$S_-soft.*" --panel-title "T = {} steps per block" \
    --json $R/frontier_bd3lm_long$F_.json --png $R/frontier_bd3lm_long$F_.png
