#!/usr/bin/env bash
# More steps or more depth for builtin:mdlm (results/bases/growth): two continued trainings of the MDLM shipped until
# commit 9df16e9 (restored from git into $OUT/prev-mdlm; builtin:mdlm has since been replaced, results/bases/shifted) with
# the same schedule (6000 steps, lr 5e-4 cosine, warm-up 100, the 8M-token data of train.sh's stage 2), side by side,
# one CPU thread each. Re-running resumes a stopped training; finished ones are skipped.
#   mdlm-4l   the shipped 4 layers, trained on
#   mdlm-8l   grown to 8 layers first (experiments.bases.grow: the new blocks start as identities, so step 0 is the
#             shipped model exactly), then trained
# Then: python -m experiments.bases.compare --reference "previous builtin:mdlm=$OUT/prev-mdlm" \
#   --run "4 layers=$OUT/mdlm-4l" --run "8 layers (grown)=$OUT/mdlm-8l" --out results/bases/growth
# PD: the paradistill command (default .venv/bin/paradistill); PY: python (default .venv/bin/python); OUT: run
# folder (default runs/grow).
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PD=${PD:-.venv/bin/paradistill} PY=${PY:-.venv/bin/python} OUT=${OUT:-runs/grow}
mkdir -p "$OUT"
common=(train.max_steps=6000 train.lr=0.0005 train.warmup_steps=100 data.num_tokens=8000000 train.eval_every=500
        train.checkpoint_every=500)
source experiments/common/resumable.sh
train() {  # name args...
  local name=$1; shift
  run_once growth "$OUT/$name" "$PD" --threads 1 train mdlm --recipe tiny "$@" "${common[@]}"
}
prev=$OUT/prev-mdlm
if [ ! -f "$prev/model.safetensors" ]; then
  mkdir -p "$prev/tokenizer"
  for f in config.json model.safetensors tokenizer/tokenizer_config.json; do
    git show "9df16e9:src/paradistill/bases/mdlm/$f" > "$prev/$f"
  done
fi
[ -d "$OUT/mdlm-8l-init" ] || "$PY" -m experiments.bases.grow "$prev" "$OUT/mdlm-8l-init" --factor 2
train mdlm-8l --init "$OUT/mdlm-8l-init" model.n_layers=8 &
train mdlm-4l --init "$prev" &
wait
echo "[growth] done: $(date -u +%H:%M:%S)"
