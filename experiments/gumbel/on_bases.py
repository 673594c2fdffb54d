"""Does Gumbel Distillation beat an uninformative control on the shipped bases? (issue #29)

The runs of `experiments/gumbel/on_bases.sh`: MDLM students fine-tuned from builtin:mdlm with builtin:ar as the
teacher, four arms per training seed (gd-add, gd-replace: the posterior Gumbel noise added to / replacing the MASK
embedding; ind-add, ind-replace: independent N(0, 1) noise in the same place, which says nothing about the text).
Each arm is sampled in three regimes, all at noise temperature 0.85 (the paper's): ancestral T = 4 and T = 16, and
the paper's own regime, first-hitting (T = L = 64) with nucleus 0.9. Samples are scored exactly under the corpus's
generator (mean NLL per token, exact Gen PPL, slips per sample, entropy). Per seed, the effect of an arm is its mean
NLL minus its control's (same seed, same sampling seed); over the seeds, the mean effect with a 95% t interval.

    python -m experiments.gumbel.on_bases --runs runs/gd-bases --seeds 0 1 2 --num 256 \
        --out results/gumbel_distillation/on_bases

Rows already in OUT/rows.json are kept (re-running resumes); --summarize only rewrites the tables.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from types import SimpleNamespace

import torch

from experiments.common.models import load_model
from experiments.common.output import write_json, write_text
from experiments.common.seeds import seed_effect

ARMS = ("gd-add", "gd-replace", "ind-add", "ind-replace")
# (label, sampler, steps, top_p)
REGIMES = (("T=4", "ancestral", 4, 1.0), ("T=16", "ancestral", 16, 1.0),
           ("first-hitting T=L, top-p 0.9", "first-hitting", 1, 0.9))
# (arm, its control): the claim; and the injection question (replace vs add, both informed)
PAIRS = (("gd-add", "ind-add"), ("gd-replace", "ind-replace"), ("gd-replace", "gd-add"))
NOISE_TEMPERATURE = 0.85


def evaluate(args, rows: list[dict], out: Path) -> list[dict]:
    from experiments.eval.sample_quality import run_setting

    done = {(r["arm"], r["train_seed"], r["regime"]) for r in rows}
    models = [(arm, seed, Path(args.runs) / f"{arm}-s{seed}") for seed in args.seeds for arm in ARMS]
    models.append(("builtin:mdlm", None, "builtin:mdlm"))  # the base every student starts from, for context
    for arm, seed, path in models:
        todo = [r for r in REGIMES if (arm, seed, r[0]) not in done]
        if not todo:
            continue
        loaded = load_model(arm, path)
        for regime, sampler, steps, top_p in todo:
            ns = SimpleNamespace(num=args.num, batch_size=args.batch_size, seed=args.sample_seed, temperature=1.0,
                                 top_p=top_p)
            row = run_setting(loaded, arm if seed is None else f"{arm} s{seed}", sampler, steps, ns, NOISE_TEMPERATURE)
            rows.append({**row, "arm": arm, "train_seed": seed, "regime": regime})
            write_json(out / "rows.json", {"args": {k: v for k, v in vars(args).items()}, "rows": rows})
    return rows


def summarize(rows: list[dict], seeds: list[int]) -> tuple[list[dict], str]:
    by = {(r["arm"], r["train_seed"], r["regime"]): r for r in rows}
    verdicts, lines = [], []
    lines += ["| claim | regime | arm vs control | seeds | NLL effect per seed (nats/token, ± s.e.) | "
              "mean effect [95% t CI] | Gen PPL ratio | verdict |", "|---|---|---|---|---|---|---|---|"]
    for arm, ctrl in PAIRS:
        for regime, *_ in REGIMES:
            pairs = [(by.get((arm, s, regime)), by.get((ctrl, s, regime))) for s in seeds]
            pairs = [(a, c) for a, c in pairs if a and c]
            if not pairs:
                continue
            eff = seed_effect([a["nll"] - c["nll"] for a, c in pairs],
                              [math.hypot(a["nll_se"], c["nll_se"]) for a, c in pairs])
            claim = "injection: replace vs add" if ctrl.startswith("gd") else "GD beats an uninformative control"
            per_seed = ", ".join(f"{e:+.3f} ± {s:.3f}" for e, s in zip(eff.effects, eff.ses))
            verdict = eff.verdict("lower (better)" if ctrl.startswith("ind") else "replace lower",
                                  "higher (worse)" if ctrl.startswith("ind") else "replace higher")
            verdicts.append({"arm": arm, "control": ctrl, "regime": regime, "seeds": len(pairs), **eff.as_dict(),
                             "verdict": verdict})
            lines.append(f"| {claim} | {regime} | {arm} vs {ctrl} | {len(pairs)} | {per_seed} | {eff.mean:+.3f} "
                         f"[{eff.lo:+.3f}, {eff.hi:+.3f}] | {math.exp(eff.mean):.3f} [{math.exp(eff.lo):.3f}, "
                         f"{math.exp(eff.hi):.3f}] | {verdict} |")
    lines += ["", "| arm | train seed | regime | exact Gen PPL [± 1 s.e.] | NLL/token | slips / sample | entropy |",
              "|---|---|---|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["regime"], r["arm"], -1 if r["train_seed"] is None else r["train_seed"])):
        lines.append(f"| {r['arm']} | {'' if r['train_seed'] is None else r['train_seed']} | {r['regime']} | "
                     f"{r['gen_ppl']:.3f} [{r['gen_ppl_lo']:.2f}, {r['gen_ppl_hi']:.2f}] | {r['nll']:.4f} | "
                     f"{r['slips_per_sample']:.2f} | {r['entropy']:.3f} |")
    return verdicts, "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="runs/gd-bases", help="the OUT folder of experiments/gumbel/on_bases.sh")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds to evaluate")
    ap.add_argument("--num", type=int, default=256, help="samples per arm, seed and regime")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--sample-seed", type=int, default=0, help="sampling seed (the same for every arm)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--summarize", action="store_true", help="only rewrite the tables from OUT/rows.json")
    ap.add_argument("--out", default="results/gumbel_distillation/on_bases")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    rows = json.loads((out / "rows.json").read_text())["rows"] if (out / "rows.json").is_file() else []
    if not args.summarize:
        rows = evaluate(args, rows, out)
    verdicts, md = summarize(rows, args.seeds)
    write_json(out / "verdicts.json", verdicts)
    write_text(out / "summary.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
