#!/usr/bin/env bash
# The MDLM arms of gpu_arms.py on a lent GPU, then each run folder packed into one archive for the trip back
# (the final checkpoint's weights, its metrics and logs; the RESUME arm, if stopped before its end, keeps its optimizer
# state so that `paradistill train ... --resume` continues it anywhere, split into 15 MB pieces: cat them, untar).
# Runs where `python3` already has torch, lightning and transformers (no install): the package is taken from src/.
#   DEADLINE (seconds for the trainings, default 450); STEPS (default: each arm's own); RUNS (default runs/gpu);
#   BACK (folder for the archives, default $OUT, else runs/gpu-back); ARMS (default all of gpu_arms.ARMS);
#   RESUME (the one stopped arm packed for resuming, default b512, the first in priority)
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
export PARADISTILL_CACHE="${PARADISTILL_CACHE:-/tmp/paradistill-cache}"
RUNS=${RUNS:-runs/gpu} BACK=${BACK:-${OUT:-runs/gpu-back}} DEADLINE=${DEADLINE:-450} RESUME=${RESUME:-b512}
mkdir -p "$RUNS" "$BACK"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, lightning, transformers as t; print('torch', torch.__version__, 'cuda',
    torch.cuda.is_available(), 'lightning', lightning.__version__, 'transformers', t.__version__)"
python3 -m experiments.bases.gpu_arms --out "$RUNS" --deadline "$DEADLINE" ${ARMS:+--arms "$ARMS"} \
    ${STEPS:+--steps "$STEPS"}
cp "$RUNS/arms.json" "$BACK/arms.json" 2>/dev/null
for run in "$RUNS"/*/; do
    name=$(basename "$run")
    [ -f "$run/latest.json" ] || { echo "[gpu] $name: no checkpoint"; continue; }
    read -r ckpt final < <(python3 -c "import json, sys; d = json.load(open(sys.argv[1]))
print(d['path'], d.get('final', False))" "$run/latest.json")
    files=(latest.json metrics.jsonl metrics.csv train_config.json "$ckpt")
    cp "$RUNS/$name.log" "$run/train.log" 2>/dev/null && files+=(train.log)
    if [ "$final" = True ]; then
        tar czf "$BACK/run-$name.tgz" -C "$run" --exclude=train_state.pt "${files[@]}"
    elif [ "$name" = "$RESUME" ]; then  # ~45 MB with its optimizer state: three pieces (8 files come back at most)
        tar czf - -C "$run" "${files[@]}" | split -b 15M - "$BACK/resume-$name.tgz."
    else
        echo "[gpu] $name: stopped at $ckpt, not packed (RESUME=$RESUME)"; continue
    fi
    echo "[gpu] $name: packed $ckpt (final: $final)"
done
ls -la "$BACK"
