r"""How good are these models' samples? Exact Gen PPL and entropy on the built-in corpus (GD students vs baselines,
SDTT students vs their teacher cooled, any LABEL=RUN model).

For every model and setting (ancestral sampling with T steps, and first-hitting with T = L: one token per forward
pass), draws `--num` samples and scores them exactly: Gen PPL = exp of the mean over samples and positions 1..L-1
of -log p(x_i | x_<i) under StoryGrammar (the corpus's generator); entropy = mean unigram entropy (nats) of each
sample's tokens at positions 1..L-1. Models are `LABEL=RUN_DIR`; GD students sample with fresh noise per sample
at `--noise-temperature` (default: the checkpoint's). `--tune` evaluates GD students at several noise temperatures
instead (use a different --seed than the reported run, so the temperature is not chosen on the test samples).

    python -m experiments.eval.sample_quality --model mdlm=runs/base/mdlm --model gd=runs/gumbel/gd-mdlm \
        --steps 4 8 16 32 --first-hitting --num 128 --json results/gumbel_distillation/main.json

`--reuse LABEL=JSON` takes a model's rows from an earlier run of this script (e.g. the baseline), so a new student
can be compared with it without sampling the baseline again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from experiments.common.models import load_model, model_args
from experiments.common.output import save
from experiments.common.scoring import GUMBEL_FIELDS, exact_score
from experiments.common.cli import positive_int


def run_setting(loaded, label: str, sampler: str, steps: int, args, noise_temperature: float | None) -> dict:
    from paradistill import api

    kw = {} if noise_temperature is None or not loaded.kind.startswith("gd-") else \
        {"noise_temperature": noise_temperature}
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    res = api.generate(loaded, args.num, sampler=sampler, steps=steps, batch_size=args.batch_size, seed=args.seed,
                       temperature=args.temperature, top_p=args.top_p, progress=False, **kw)
    temp = kw.get("noise_temperature", loaded.method.get("gumbel", {}).get("noise_temperature"))
    row = {"model": label, "kind": loaded.kind, "checkpoint": str(loaded.path), "sampler": sampler,
           "steps": steps if sampler != "first-hitting" else "L", "nfe_per_batch": sum(res.nfe) / len(res.nfe),
           "noise_temperature": temp if loaded.kind.startswith("gd-") else None, "seed": args.seed,
           "temperature": args.temperature, "top_p": args.top_p,
           "seconds": time.perf_counter() - start, **exact_score(res.tokens).row(GUMBEL_FIELDS + ("nll_se",))}
    print(f"{label:16s} {sampler:14s} T={row['steps']!s:3s} tau={temp!s:5s} Gen PPL {row['gen_ppl']:8.3f} "
          f"entropy {row['entropy']:.3f}  NFE {row['nfe_per_batch']:.1f}", flush=True)
    return row


def table(rows: list[dict], baseline: str) -> str:
    """Markdown: one line per (model, setting) with the change of Gen PPL and the entropy ratio vs the baseline."""
    base = {(r["sampler"], r["steps"]): r for r in rows if r["model"] == baseline}
    lines = ["| model | sampler | T | noise temp. | Gen PPL (exact) | vs baseline | slips / sample | entropy | "
             "entropy / baseline |", "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        b = base.get((r["sampler"], r["steps"]))
        rel = f"{100 * (r['gen_ppl'] / b['gen_ppl'] - 1):+.1f}%" if b and r is not b else ""
        ent = f"{r['entropy'] / b['entropy']:.3f}" if b and r is not b else ""
        slips = f"{r['slips_per_sample']:.2f}" if "slips_per_sample" in r else "-"
        lines.append(f"| {r['model']} | {r['sampler']} | {r['steps']} | {r['noise_temperature'] or ''} | "
                     f"{r['gen_ppl']:.3f} [{r['gen_ppl_lo']:.2f}, {r['gen_ppl_hi']:.2f}] | {rel} | {slips} | "
                     f"{r['entropy']:.3f} | {ent} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, metavar="LABEL=RUN",
                    help="a model to evaluate; the first one is the baseline of the table")
    ap.add_argument("--steps", type=positive_int, nargs="*", default=[4, 8, 16, 32], help="ancestral step counts")
    ap.add_argument("--first-hitting", action="store_true", help="also sample with first-hitting (T = L)")
    ap.add_argument("--num", type=positive_int, default=128)
    ap.add_argument("--batch-size", type=positive_int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise-temperature", type=float, default=None, help="GD students (default: checkpoint's)")
    ap.add_argument("--temperature", type=float, default=1.0,
                    help="softmax temperature of every model's token draws (below 1: lower entropy; a baseline at "
                         "the entropy of a student is the fair comparison)")
    ap.add_argument("--top-p", type=float, default=1.0,
                    help="nucleus sampling of every model's token draws (the Gumbel Distillation paper's 0.9)")
    ap.add_argument("--tune", type=float, nargs="*", default=None,
                    help="evaluate GD students at these noise temperatures instead")
    ap.add_argument("--reuse", action="append", default=[], metavar="LABEL=JSON",
                    help="take LABEL's rows from an earlier --json of this script (same --num and --seed) instead of "
                         "sampling it again; reused models come first, so the first one is the baseline")
    ap.add_argument("--threads", type=positive_int, default=1)
    ap.add_argument("--json", default=None, help="write the rows here (and a table.md beside it)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = model_args(args.model)
    rows = []
    for item, (label, path) in zip(args.reuse, model_args(args.reuse, "--reuse")):
        if not Path(path).is_file():
            raise SystemExit(f"--reuse {item}: no such file")
        old = json.loads(Path(path).read_text())
        if (old["args"]["num"], old["args"]["seed"]) != (args.num, args.seed):
            raise SystemExit(f"--reuse {item}: it was sampled with --num {old['args']['num']} --seed "
                             f"{old['args']['seed']}, not --num {args.num} --seed {args.seed}")
        taken = [r for r in old["rows"] if r["model"] == label]
        if not taken:
            raise SystemExit(f"--reuse {item}: no rows labelled {label!r} in {path}")
        rows += taken
    settings = [("ancestral", s) for s in args.steps] + ([("first-hitting", 1)] if args.first_hitting else [])
    for label, path in models:
        loaded = load_model(label, path)
        temps = args.tune if args.tune and loaded.kind.startswith("gd-") else [args.noise_temperature]
        for temp in temps:
            for sampler, steps in settings:
                rows.append(run_setting(loaded, label if len(temps) == 1 else f"{label} tau={temp}", sampler,
                                        steps, args, temp))
    md = table(rows, args.reuse[0].split("=", 1)[0] if args.reuse else models[0][0])
    save(args, rows, md)


if __name__ == "__main__":
    main()
