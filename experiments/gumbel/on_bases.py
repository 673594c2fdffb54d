r"""Does Gumbel Distillation beat an uninformative control on the shipped bases? (issue #29)

The runs of `experiments/gumbel/on_bases.sh`: MDLM students fine-tuned from builtin:mdlm with builtin:ar as the
teacher, four arms per training seed (gd-add, gd-replace: the posterior Gumbel noise added to / replacing the MASK
embedding; ind-add, ind-replace: independent N(0, 1) noise in the same place, which says nothing about the text).
Each arm is sampled in three regimes, all at noise temperature 0.85 (the paper's): ancestral T = 4 and T = 16, and
the paper's own regime, first-hitting (T = L = 64) with nucleus 0.9. Samples are scored exactly under the corpus's
generator (mean NLL per token, exact Gen PPL, slips per sample, entropy). Per seed, the effect of an arm is its mean
NLL minus its control's (same seed, same sampling seed); over the seeds, the mean effect with a 95% t interval
(never narrower than the seeds' own sampling error implies).
Training seed S is sampled with its own sampling seed, SAMPLE_SEED + S (arm and control share it), so that the
interval over seeds holds the sampling noise too; --no-vary-sample-seed gives every seed SAMPLE_SEED instead.

    python -m experiments.gumbel.on_bases --runs runs/gd-bases --seeds 0 1 2 --num 256 \
        --out results/gumbel_distillation/on_bases

Rows already in OUT/rows.json are kept (re-running resumes); --summarize only rewrites the tables. --arms and
--regimes restrict the evaluation (a confirmation of one effect on fresh seeds evaluates only its two arms).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

from experiments.common.models import load_model
from experiments.common.output import write_json
from experiments.common.seeds import (EFFECT_HEADER, FLOOR_NOTE, add_study_arguments, nll_effect_row, rows_table,
                                      run_study, sample_seed)

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
    models = [(arm, seed, Path(args.runs) / f"{arm}-s{seed}") for seed in args.seeds for arm in args.arms]
    models.append(("builtin:mdlm", None, "builtin:mdlm"))  # the base every student starts from, for context
    regimes = [r for r in REGIMES if r[0] in args.regimes]
    for arm, seed, path in models:
        todo = [r for r in regimes if (arm, seed, r[0]) not in done]
        if not todo:
            continue
        loaded = load_model(arm, path)
        for regime, sampler, steps, top_p in todo:
            ns = SimpleNamespace(num=args.num, batch_size=args.batch_size, seed=sample_seed(args, seed),
                                 temperature=1.0, top_p=top_p)
            row = run_setting(loaded, arm if seed is None else f"{arm} s{seed}", sampler, steps, ns, NOISE_TEMPERATURE)
            rows.append({**row, "arm": arm, "train_seed": seed, "regime": regime, "sample_seed": ns.seed})
            write_json(out / "rows.json", {"args": {k: v for k, v in vars(args).items()}, "rows": rows})
    return rows


def summarize(rows: list[dict], seeds: list[int]) -> tuple[list[dict], str]:
    by = {(r["arm"], r["train_seed"], r["regime"]): r for r in rows}
    verdicts, lines = [], list(EFFECT_HEADER)
    for arm, ctrl in PAIRS:
        informed = ctrl.startswith("ind")
        for regime, *_ in REGIMES:
            pairs = [(by.get((arm, s, regime)), by.get((ctrl, s, regime))) for s in seeds]
            pairs = [(a, c) for a, c in pairs if a and c]
            if not pairs:
                continue
            claim = "GD beats an uninformative control" if informed else "injection: replace vs add"
            v, text = nll_effect_row(claim, f"{regime}: {arm} − {ctrl}", pairs,
                                     "lower (better)" if informed else "replace lower",
                                     "higher (worse)" if informed else "replace higher")
            verdicts.append({**v, "arm": arm, "control": ctrl, "regime": regime})
            lines.append(text)
    lines += ["", FLOOR_NOTE, "", *rows_table(rows, "regime", "regime")]
    return verdicts, "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_study_arguments(ap, "runs/gd-bases", "results/gumbel_distillation/on_bases")
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS), help="arms to evaluate (default: all)")
    ap.add_argument("--regimes", nargs="+", choices=[r[0] for r in REGIMES], default=[r[0] for r in REGIMES],
                    metavar="REGIME", help="sampling regimes to evaluate, by label: %(choices)s (default: all)")
    args = ap.parse_args(argv)
    return run_study(args, evaluate, lambda rows: summarize(rows, args.seeds))


if __name__ == "__main__":
    raise SystemExit(main())
