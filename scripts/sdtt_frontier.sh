#!/usr/bin/env bash
# SDTT students against their teacher sampled cooler (entropy-matched), -> results/sdtt/frontier*.
# A lower entropy alone lowers Gen PPL; reverse-KL distillation is mode-seeking, so an SDTT student should be
# compared with its teacher *at the same entropy*, and the target (student @16 <= teacher @64 with entropy
# within 5%) with what cooling the teacher alone achieves. Needs runs/base/mdlm, runs/sdtt/mdlm and
# runs/sdtt/mdlm-long (scripts/sdtt_experiment.sh, scripts/sdtt_long_rounds.sh). ~10 CPU-minutes.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
PY=.venv/bin/python
R=results/sdtt
EVAL="$PY scripts/gumbel_eval.py --num 256 --batch-size 128 --seed 0"
# the teacher at softmax temperatures 0.7 ... 1.1, at the students' step counts and at 64 (the target's reference)
for T in 1.1 1.05 1.0 0.95 0.9 0.85 0.8 0.75 0.7; do
  [ -f $R/frontier_teacher_temp$T.json ] || $EVAL --model mdlm-temp$T=runs/base/mdlm --temperature $T \
      --steps 8 16 32 64 --json $R/frontier_teacher_temp$T.json
done
# each round's student at its own step count, softmax temperature 1 (400- and 1200-step rounds)
[ -f $R/frontier_students_r1.json ] || $EVAL --model sdtt-r1=runs/sdtt/mdlm/round_1_32steps --steps 32 \
    --json $R/frontier_students_r1.json
[ -f $R/frontier_students_r2.json ] || $EVAL --model sdtt-r2=runs/sdtt/mdlm/round_2_16steps \
    --model sdtt-long-r2=runs/sdtt/mdlm-long/round_2_16steps --steps 16 --json $R/frontier_students_r2.json
[ -f $R/frontier_students_r3.json ] || $EVAL --model sdtt-r3=runs/sdtt/mdlm/round_3_8steps --steps 8 \
    --json $R/frontier_students_r3.json
$PY scripts/gumbel_frontier.py $R/frontier_teacher_temp*.json $R/frontier_students_r{1,2,3}.json \
    --series "MDLM teacher, softmax temperature=mdlm-temp.*" --series "SDTT students (400-step rounds)=sdtt-r.*" \
    --series "SDTT student (1200-step rounds)=sdtt-long-r.*" --panel-title "T = {} steps" \
    --json $R/frontier.json --png $R/frontier.png
