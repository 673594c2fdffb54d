# Sourced by the experiments' training scripts (bash):
#   run_once TAG RUN_DIR COMMAND [ARGS...]
# skips RUN_DIR when its latest.json says final, else runs COMMAND ARGS --out RUN_DIR, adding --resume when RUN_DIR
# already holds anything (an interrupted run: a training checkpoint, or the finished rounds of an SDTT run, whose
# top-level latest.json is written only at its end), appending its output to RUN_DIR.log and printing
# "[TAG] RUN_DIR: HH:MM:SS" when it starts.
run_once() {
  local tag=$1 run=$2
  shift 2
  grep -q '"final": true' "$run/latest.json" 2>/dev/null && return 0
  local resume=()
  [ -n "$(ls -A "$run" 2>/dev/null | grep -vx '\.lock')" ] && resume=(--resume)
  echo "[$tag] $run: $(date -u +%H:%M:%S)"
  "$@" --out "$run" "${resume[@]}" >> "$run.log" 2>&1
}
