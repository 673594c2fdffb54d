#!/usr/bin/env bash
# Gumbel Distillation re-measured on the shipped bases (issue #29): students fine-tuned from builtin:mdlm with the
# AR base (builtin:ar) as teacher, 4 arms x 3 training seeds, each arm with the same init, data, steps and seed:
#   gd-add        posterior Gumbel noise, projection added to the MASK embedding (zero-initialised)
#   gd-replace    posterior Gumbel noise, projection replaces the MASK embedding (the official injection)
#   ind-add       independent N(0,1) noise drawn apart from the text, added   (uninformative control of gd-add)
#   ind-replace   independent N(0,1) noise, replacing the MASK embedding      (uninformative control of gd-replace)
# A student beats its control only if it uses what the noise says about the text. Re-running resumes / skips.
# Then: python -m experiments.gumbel.on_bases (see results/gumbel_distillation/on_bases/COMMAND.md).
# BASE: the MDLM students start from (default builtin:mdlm; a run folder for an earlier base);
# PD: the paradistill command (default .venv/bin/paradistill); OUT: run folder (default runs/gd-bases);
# SEEDS (default "0 1 2"); STEPS (default 500); ARMS (default all four, in the order above).
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PD=${PD:-.venv/bin/paradistill} BASE=${BASE:-builtin:mdlm} OUT=${OUT:-runs/gd-bases} SEEDS=${SEEDS:-0 1 2} STEPS=${STEPS:-500}
ARMS=${ARMS:-gd-add gd-replace ind-add ind-replace}
for arm in $ARMS; do
  case $arm in gd-add|gd-replace|ind-add|ind-replace) ;;
    *) echo "on_bases.sh: unknown arm '$arm' in ARMS; choose from gd-add gd-replace ind-add ind-replace" >&2; exit 2;;
  esac
done
mkdir -p "$OUT"
source experiments/common/resumable.sh
for seed in $SEEDS; do
  for arm in $ARMS; do
    noise=gumbel; [ "${arm%%-*}" = ind ] && noise=independent
    run_once gd-bases "$OUT/$arm-s$seed" "$PD" --threads 1 distill gumbel --teacher builtin:ar --student mdlm \
        --recipe tiny --init "$BASE" gumbel.noise=$noise gumbel.extra_mode="${arm#*-}" train.seed=$seed \
        train.max_steps="$STEPS" train.lr=0.0005 train.warmup_steps=20 train.eval_every=100 train.checkpoint_every=100
  done
done
echo "[gd-bases] done: $(date -u +%H:%M:%S)"
