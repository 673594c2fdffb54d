#!/usr/bin/env bash
# SDTT on the shipped base (issue #29), the entropy check: its students sample with a lower unigram entropy than
# their teacher, and a lower entropy alone lowers Gen PPL. The teacher (builtin:mdlm) is sampled at softmax
# temperatures 0.65 ... 1.0 at T = 8 and 16, each last student of experiments/sdtt/on_bases.sh at temperature 1;
# experiments.eval.entropy_matched compares every student with the teacher at the same T and the same entropy.
# Needs the runs of experiments/sdtt/on_bases.sh. RUNS: their folder (default runs/sdtt-bases); OUT: output folder
# (default results/sdtt/on_bases/entropy_matched); NUM: samples per row (default 512); BASE: the teacher (default
# builtin:mdlm; a run folder for an earlier base); VARY_SAMPLE_SEED (default 1) samples the students of training
# seed S with sampling seed S (students_s$S.json), so that the interval over seeds also holds the sampling noise;
# VARY_SAMPLE_SEED=0 samples them all with seed 0 (students.json), as the script did before 2026-12-05. Existing
# JSON is kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
BASE=${BASE:-builtin:mdlm} RUNS=${RUNS:-runs/sdtt-bases} OUT=${OUT:-results/sdtt/on_bases/entropy_matched} NUM=${NUM:-512}
PY=${PY:-.venv/bin/python}
EVAL="$PY -m experiments.eval.sample_quality --num $NUM --batch-size 128 --steps 8 16"
VARY=${VARY_SAMPLE_SEED:-1}
case "$VARY" in 0|1) ;; *) echo "on_bases_entropy.sh: VARY_SAMPLE_SEED=$VARY: pass 0 or 1" >&2; exit 2;; esac
for protocol in paradistill official; do
  for seed in 0 1 2; do
    [ -d "$RUNS/$protocol-s$seed" ] || { echo "on_bases_entropy.sh: no SDTT run '$RUNS/$protocol-s$seed': run" \
        "experiments/sdtt/on_bases.sh first, or point RUNS at its run folder" >&2; exit 2; }
  done
done
mkdir -p "$OUT"
for t in 1.0 0.95 0.9 0.85 0.8 0.75 0.7 0.65; do
  [ -f "$OUT/teacher_temp$t.json" ] || $EVAL --seed 0 --model "teacher-temp$t=$BASE" --temperature "$t" \
      --json "$OUT/teacher_temp$t.json"
done
students=()
for group in $([ "$VARY" = 1 ] && echo 0 1 2 || echo all); do  # one sampling call per group of students
  models=()
  for protocol in paradistill official; do
    for seed in 0 1 2; do
      if [ "$group" = all ] || [ "$group" = "$seed" ]; then
        models+=(--model "$protocol-s$seed=$RUNS/$protocol-s$seed")
      fi
    done
  done
  if [ "$group" = all ]; then file="$OUT/students.json" seed=0; else file="$OUT/students_s$group.json" seed=$group; fi
  [ -f "$file" ] || $EVAL --seed "$seed" "${models[@]}" --json "$file"
  students+=("$file")
done
$PY -m experiments.eval.entropy_matched "$OUT"/teacher_temp*.json "${students[@]}" \
    --series "teacher (builtin:mdlm), softmax temperature=teacher-temp.*" \
    --series "SDTT students, ours=paradistill-s.*" --series "SDTT students, official=official-s.*" \
    --panel-title "T = {} steps" --json "$OUT/frontier.json" --png "$OUT/frontier.png"
