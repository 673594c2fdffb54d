#!/usr/bin/env bash
# The speed benchmark (`paradistill bench`) on one CUDA GPU (sized for an NVIDIA H200), in three parts:
#   gpt2_bf16  GPT-2 size (124M parameters, V=50258) in bfloat16: KV-cached AR, the `transformers` GPT-2
#              generate baseline, MDLM at T=16 and 64, the MDLM block caches (none / prefix / dual) and BD3-LM
#   tiny_bf16  the tiny CPU recipe's size (dim 192, 4 layers, V=360) in bfloat16, the same methods
#   gpt2_fp32  GPT-2 size in float32 (TF32 off, torch's default), L=1024, batch 8, beside gpt2_bf16
#   decode_cudnn  (not in the default PARTS) KV-cached AR and BD3-LM at GPT-2 size, bf16, L=1024, batch 8, twice:
#              as shipped (eager decoding into a dynamic KV cache leaves out cuDNN attention) and with
#              PARADISTILL_DECODE_CUDNN=1 (PyTorch's own backend choice): compare their "first call (s)" columns
# Every case: one untimed warm-up, then 3 interleaved timed rounds, each call synchronized; peak memory from
# the CUDA allocator; plus the GPU's peak matmul and copy bandwidth in that dtype and the roofline.
#
# Two sizes of run:
#   default (~5 min on an H200): gpt2_bf16 at L=256 and 1024, batch 8 (above 2048 tokens per call only AR,
#     MDLM T=16 / 64 and the dual cache run: the HF baseline and BD3-LM are timed at L=256); tiny_bf16 at L=256,
#     batch 8, with a torch.compile'd twin of KV-cached AR when COMPILE=1; gpt2_fp32 with MDLM only (the
#     compute-bound passes, where the dtype matters).
#   FULL=1 (~12 min eager, several more with COMPILE=1; over one 10-minute command: run it by PARTS): every
#     method at L=256 and 1024 x batch 1 and 8 for gpt2_bf16, batch 1 and 8 for tiny_bf16, and all methods
#     for gpt2_fp32; COMPILE=1 adds compiled twins of the AR / MDLM T=16 / BD3-LM cached cases in the bf16 parts.
# Why it is slow: an eager AR generate of GPT-2 at L=1024 takes ~8 s (1023 steps of ~8 ms, launch-bound), and
# on torch 2.11 / H200 the first call of each new attention shape cost ~50 ms (cuDNN attention, suspected; the
# decode_cudnn part tests it), so the warm-up of a KV-cached AR (or HF) case at L=1024 took ~1 min per batch size
# (a compiled AR step compiles ~40-60 s per graph).
#
# Run on a machine whose python3 has torch (CUDA build), transformers, lightning, tokenizers, matplotlib, ...
# installed; nothing is installed or downloaded (the package is imported from src/):
#   bash experiments/bench/gpu.sh
#   OUT_DIR=results/bench/h200_b COMPILE=0 PARTS="gpt2_bf16 gpt2_fp32" bash experiments/bench/gpu.sh
#   FULL=1 PARTS=gpt2_bf16 bash experiments/bench/gpu.sh
# Writes OUT_DIR/<part>/{bench.json,table.md,bench.png}, replacing earlier ones there (OUT_DIR default
# results/bench/h200).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

PYTHON=${PYTHON:-python3}
OUT_DIR=${OUT_DIR:-results/bench/h200}
COMPILE=${COMPILE:-1}
FULL=${FULL:-0}
PARTS=${PARTS:-gpt2_bf16 tiny_bf16 gpt2_fp32}
export PYTHONPATH="src:.${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

methods=ar,hf,mdlm,blockcache,bd3lm
log() { echo "[gpu.sh $(date +%H:%M:%S)] $*"; }

"$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' || {
    log "torch sees no CUDA GPU here: run this on a GPU machine"; exit 1; }
log "$("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(), "| torch", torch.__version__, "| CUDA", torch.version.cuda)')"
log "parts: $PARTS -> $OUT_DIR (FULL=$FULL COMPILE=$COMPILE)"
mkdir -p "$OUT_DIR"

bench() {  # bench PART ARGS...: one run into OUT_DIR/PART
    local part=$1 started=$SECONDS
    shift
    log "start $part: $*"
    "$PYTHON" -m paradistill.cli bench --device cuda --warmup 1 --rounds 3 --no-baselines --mdlm-steps 16,64 \
        --overwrite --out "$OUT_DIR/$part" "$@"
    log "done $part in $((SECONDS - started)) s: $OUT_DIR/$part/table.md"
}

part_gpt2_bf16() {
    local args=(--model-size gpt2 --dtype bfloat16 --lengths 256,1024 --methods "$methods")
    if [ "$FULL" = 1 ]; then
        args+=(--batch-sizes 1,8)
        if [ "$COMPILE" = 1 ]; then args+=(--compile); fi
    else
        args+=(--batch-sizes 8 --heavy-tokens 2048
               --heavy-cases "ar kv-cache,mdlm T=16 cached,mdlm T=64 cached,mdlm B=32 S=4 dual")
    fi
    bench gpt2_bf16 "${args[@]}"
}

part_tiny_bf16() {
    local args=(--model-size tiny --dtype bfloat16 --lengths 256 --methods "$methods")
    if [ "$FULL" = 1 ]; then args+=(--batch-sizes 1,8); else args+=(--batch-sizes 8); fi
    if [ "$COMPILE" = 1 ]; then
        args+=(--compile)
        if [ "$FULL" != 1 ]; then args+=(--compile-cases "ar kv-cache"); fi
    fi
    bench tiny_bf16 "${args[@]}"
}

part_gpt2_fp32() {
    local args=(--model-size gpt2 --dtype float32 --lengths 1024 --batch-sizes 8)
    if [ "$FULL" = 1 ]; then args+=(--methods "$methods"); else args+=(--methods mdlm); fi
    bench gpt2_fp32 "${args[@]}"
}

part_decode_cudnn() {
    local args=(--model-size gpt2 --dtype bfloat16 --lengths 1024 --batch-sizes 8 --methods ar,bd3lm --rounds 1)
    PARADISTILL_DECODE_CUDNN=0 bench decode_cudnn/without "${args[@]}"
    PARADISTILL_DECODE_CUDNN=1 bench decode_cudnn/pytorch_choice "${args[@]}"
}

total=$SECONDS
for part in $PARTS; do
    case $part in
        gpt2_bf16 | tiny_bf16 | gpt2_fp32 | decode_cudnn) "part_$part" ;;
        *) log "unknown part '$part': choose from gpt2_bf16 tiny_bf16 gpt2_fp32 decode_cudnn"; exit 2 ;;
    esac
done
log "all done in $((SECONDS - total)) s"
