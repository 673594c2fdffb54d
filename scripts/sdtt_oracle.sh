#!/usr/bin/env bash
# Perfect SDTT students (scripts/sdtt_oracle.py) sampled at T steps, beside the teacher at T, 2T (and 4T) steps with
# the same sampler and seeds -> results/sdtt/oracle_*.json and the table oracle.md (+ oracle.json). ~25 CPU-minutes.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
PY=.venv/bin/python
R=results/sdtt
O="$PY scripts/sdtt_oracle.py --teacher runs/base/mdlm --num 128"
[ -f $R/oracle_T32.json ] || $O --steps 32 --draws 16 --json $R/oracle_T32.json       # round 1: 64 -> 32
[ -f $R/oracle_T16.json ] || $O --steps 16 --draws 16 --json $R/oracle_T16.json       # one round 32 -> 16
[ -f $R/oracle_T16_draws4.json ] || $O --steps 16 --draws 4 --json $R/oracle_T16_draws4.json  # bias of few draws
[ -f $R/oracle_T16_rounds2.json ] || $O --steps 16 --rounds 2 --draws 4 --json $R/oracle_T16_rounds2.json  # 64 -> 16
[ -f $R/oracle_T8.json ] || $O --steps 8 --draws 16 --json $R/oracle_T8.json          # one round 16 -> 8
$PY scripts/sdtt_oracle.py --table $R/oracle_T32.json $R/oracle_T16.json $R/oracle_T16_draws4.json \
    $R/oracle_T16_rounds2.json $R/oracle_T8.json --json $R/oracle.json
