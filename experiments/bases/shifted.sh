#!/usr/bin/env bash
# Does the shifted adaptation (Dream's convention: the AR's next-token head kept, outputs shifted; attention annealed
# from causal over 50 steps) also converge to a better MDLM than the unshifted one, not only start faster
# (results/bases/adaptation.md)? Two MDLMs from builtin:ar with one schedule (15000 steps at lr 1e-3, cosine; the
# 8M-token data), one CPU thread each; about 2 h 10 min each side by side on this 2-core machine.
#   shift       adapt.shift=true adapt.anneal_steps=50
#   unshifted   the MDLM's own convention; this run became builtin:mdlm (results/bases/shifted)
# Re-running resumes a stopped training; finished ones are skipped. `bash shifted.sh shift|unshifted` runs one arm.
# Then compare the two with experiments.bases.compare (results/bases/shifted/COMMAND.md; its "its training steps"
# column counts steps from builtin:ar).
# PD: the paradistill command (default .venv/bin/paradistill); OUT: run folder (default runs/shifted).
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PD=${PD:-.venv/bin/paradistill} OUT=${OUT:-runs/shifted}
mkdir -p "$OUT"
common=(train.max_steps=15000 train.lr=0.001 data.num_tokens=8000000 train.eval_every=500 train.checkpoint_every=500)
source experiments/common/resumable.sh
train() {  # name args...
  local name=$1; shift
  run_once shifted "$OUT/$name" "$PD" --threads 1 train mdlm --recipe tiny --init-from-ar builtin:ar "$@" "${common[@]}"
}
case "${1:-both}" in
  shift) train shift adapt.shift=true adapt.anneal_steps=50 ;;
  unshifted) train unshifted ;;
  both) train shift adapt.shift=true adapt.anneal_steps=50 & train unshifted & wait ;;
  *) echo "usage: $0 [shift|unshifted|both]" >&2; exit 2 ;;
esac
