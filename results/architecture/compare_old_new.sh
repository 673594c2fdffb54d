#!/usr/bin/env bash
# Outputs unchanged by the issue-23 restructuring: sample and evaluate the same checkpoints with the code before
# the move (OLD=commit) and the code now, and compare every token and every metric.
# Usage (repo root, .venv set up): OLD=d2fb855 bash results/architecture/compare_old_new.sh
set -euo pipefail
OLD=${OLD:-d2fb855}
work=$(mktemp -d)
git worktree add -q --detach "$work/old" "$OLD"
trap 'git worktree remove --force "$work/old"' EXIT
new() { PYTHONPATH=$PWD/src .venv/bin/python -m paradistill.cli --threads 1 "$@"; }
old() { PYTHONPATH=$work/old/src .venv/bin/python -m paradistill.cli --threads 1 "$@"; }
small="model.dim=64 model.n_layers=2 model.n_heads=2 train.max_steps=20 train.eval_every=20 train.checkpoint_every=20 data.num_tokens=200000 train.log_every=10"
export PARADISTILL_CACHE=$work/cache
new train ar --out "$work/ar" $small >/dev/null
new train mdlm --out "$work/mdlm" $small >/dev/null
new train bd3lm --out "$work/bd3" $small >/dev/null
new distill gumbel --teacher "$work/ar" --student mdlm --out "$work/gd" $small >/dev/null
new distill adjust --base "$work/mdlm" --trajectories 64 --steps 10 --out "$work/adj" $small adjust.batch_size=16 >/dev/null
cases=("ar|$work/ar|--sampler ancestral"
       "mdlm ancestral T=16|$work/mdlm|--sampler ancestral --steps 16"
       "mdlm confidence T=8|$work/mdlm|--sampler confidence --steps 8"
       "bd3lm B=4 T=2|$work/bd3|--sampler ancestral --steps 2"
       "gd-mdlm T=8|$work/gd|--sampler ancestral --steps 8"
       "adjust K=4|$work/adj|--sampler adjust --tokens-per-pass 4"
       "marginal K=4|$work/mdlm|--sampler adjust --adjust-mode marginal --tokens-per-pass 4")
rows=()
i=0
for c in "${cases[@]}"; do
  IFS='|' read -r name run opts <<<"$c"
  i=$((i + 1))
  for side in old new; do  # a new file per case and side: outputs are never replaced
    $side sample "$run" $opts --num 16 --seed 7 --out "$work/$side-$i.jsonl" >/dev/null 2>&1
    $side eval "$work/$side-$i.jsonl" --metrics exact,entropy,distinct --out "$work/$side-$i-eval.json" >/dev/null 2>&1
    cp "$work/$side-$i.jsonl" "$work/$side.jsonl"; cp "$work/$side-$i-eval.json" "$work/$side-eval.json"
  done
  same_tokens=$(.venv/bin/python - "$work/old.jsonl" "$work/new.jsonl" <<'PY'
import json, sys
a, b = ([json.loads(l)["tokens"] for l in open(f)] for f in sys.argv[1:])
print(str(a == b).lower())
PY
)
  same_metrics=$(.venv/bin/python - "$work/old-eval.json" "$work/new-eval.json" <<'PY'
import json, sys
keys = ("exact", "entropy", "entropy_std", "distinct_1", "distinct_2", "distinct_3")
a, b = ({k: json.load(open(f)).get(k) for k in keys} for f in sys.argv[1:])
print(str(a == b).lower())
PY
)
  rows+=("{\"case\": \"$name\", \"tokens_identical\": $same_tokens, \"metrics_identical\": $same_metrics}")
done
printf '{"old": "%s", "new": "%s", "cases": [%s]}\n' "$OLD" "$(git rev-parse --short HEAD)" "$(IFS=,; echo "${rows[*]}")" \
  | .venv/bin/python -m json.tool > results/architecture/outputs_unchanged.json
cat results/architecture/outputs_unchanged.json
