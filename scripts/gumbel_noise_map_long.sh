#!/usr/bin/env bash
# Gumbel Distillation, session 10 (issue #6): do the two seeds of the 4800-step block student follow the noise
# equally at inference? Agreement of their samples with the teacher's Gumbel-max choice after each sample's own
# prefix (scripts/gumbel_noise_map.py), beside the BD3-LM of the same seed (the chance level).
# Needs the runs of `bash scripts/gumbel_bd3lm_long.sh` and `SEED=1 bash scripts/gumbel_bd3lm_long.sh`.
# -> results/gumbel_distillation/noise_map_bd3lm_long.{json,md}
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PARADISTILL_CACHE=${PARADISTILL_CACHE:-.cache/data}
R=results/gumbel_distillation
.venv/bin/python scripts/gumbel_noise_map.py --model bd3lm-long=runs/base/bd3lm-b4-long \
    --model gd-bd3lm-skip-long=runs/gumbel/gd-bd3lm-skip-long --model bd3lm-long-seed1=runs/base/bd3lm-b4-long-seed1 \
    --model gd-bd3lm-skip-long-seed1=runs/gumbel/gd-bd3lm-skip-long-seed1 --steps 1 2 4 --num 128 \
    --json $R/noise_map_bd3lm_long.json
