"""Paired comparisons over training seeds: one effect per seed (arm minus its control, same seed), the mean over
seeds with a Student-t interval (never narrower than the seeds' own sampling error implies), and a verdict that
calls a difference only when that interval excludes zero."""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass

from scipy import stats
from experiments.common.cli import positive_int


@dataclass
class SeedEffect:
    effects: list[float]  # one per seed
    ses: list[float]  # each seed's own standard error (sampling noise of that seed's evaluation)
    mean: float
    lo: float  # 95% Student-t interval of the mean over seeds (df = seeds - 1), floored by `ses` (seed_effect)
    hi: float
    same_sign: bool  # every seed's effect has the mean's sign
    shared_se: float | None = None  # s.e. of a reference evaluated once for all seeds, folded into lo / hi
    floored: bool = False  # the seeds' own sampling error, not their spread, set the width (see seed_effect)

    def verdict(self, lower_is: str = "better", higher_is: str = "worse") -> str:
        if len(self.effects) < 2:
            return "one seed: no verdict"
        if self.hi < 0:
            return lower_is
        if self.lo > 0:
            return higher_is
        return "within noise" + (" (same sign on every seed)" if self.same_sign and self.mean != 0 else "")

    def as_dict(self) -> dict:
        return asdict(self)


def seed_effect(effects: list[float], ses: list[float] | None = None, shared_se: float | None = None) -> SeedEffect:
    """effects: one paired difference per seed -> SeedEffect with the t interval of their mean.

    `ses`: each seed's own sampling standard error (the part independent across seeds). With three seeds the
    sample standard deviation is itself very uncertain and can fall far below the noise each evaluation is known to
    carry (three effects that agree to 0.002 when each has s.e. 0.03); the interval is then never narrower than the
    one that sampling error alone implies, 1.96 sqrt(sum se^2) / n (the mean's s.e. when the seeds differ by
    sampling alone; Knapp-Hartung's ad hoc floor, with the normal quantile because these s.e. are estimated from
    hundreds of samples each). `floored` says that this bound set the width.

    When every seed is compared with one and the same reference evaluation (a teacher sampled once), that
    evaluation's sampling error moves all effects together and the spread over seeds cannot see it: `shared_se`
    (its standard error) is then added in quadrature, half-width sqrt(half^2 + (1.96 shared_se)^2)."""
    n = len(effects)
    if n == 0:
        raise ValueError("seed_effect: no seeds")
    mean = sum(effects) / n
    if n > 1:
        sd = math.sqrt(sum((e - mean) ** 2 for e in effects) / (n - 1))
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    else:
        half = float("inf")
    z = stats.norm.ppf(0.975)
    floor = z * math.sqrt(sum(s * s for s in ses)) / n if ses and all(math.isfinite(s) for s in ses) else 0.0
    floored = bool(floor > half)
    half = float(max(half, floor))
    if shared_se is not None:
        half = math.hypot(half, z * shared_se)
    same = all((e > 0) == (mean > 0) and e != 0 for e in effects)
    return SeedEffect(list(effects), list(ses or [float("nan")] * n), mean, mean - half, mean + half, same, shared_se,
                      floored)


FLOOR_NOTE = ("‡: the seeds' effects agree more closely than their own sampling error allows; the interval is the "
              "one that error alone implies (1.96 sqrt(sum se^2) / n), not the narrower t interval of their spread.")

EFFECT_HEADER = ["| claim | comparison | seeds | NLL effect per seed (nats/token, ± s.e.) | mean [95% t CI] | "
                 "Gen PPL ratio | verdict |", "|---|---|---|---|---|---|---|"]


def nll_effect_row(claim: str, label: str, pairs: list[tuple[dict, dict]], lower: str, higher: str):
    """Rows (arm, reference) of the same seeds -> (verdict record, markdown line under EFFECT_HEADER): the mean
    NLL per token of arm minus reference per seed, their t interval, and its Gen PPL ratio exp(effect). A reference
    row shared by every seed (the same evaluation) has its standard error folded into the interval (seed_effect)."""
    shared = pairs[0][1]["nll_se"] if len(pairs) > 1 and all(c is pairs[0][1] for _, c in pairs) else None
    full = [math.hypot(a["nll_se"], c["nll_se"]) for a, c in pairs]  # each seed's effect, all its sampling error
    own = [a["nll_se"] for a, _ in pairs] if shared is not None else full  # the part independent across seeds
    eff = seed_effect([a["nll"] - c["nll"] for a, c in pairs], own, shared)
    per_seed = ", ".join(f"{e:+.3f} ± {s:.3f}" for e, s in zip(eff.effects, full))
    verdict = eff.verdict(lower, higher)
    ci = f"{eff.mean:+.3f} [{eff.lo:+.3f}, {eff.hi:+.3f}]" + (" ‡" if eff.floored else "")
    text = (f"| {claim} | {label} | {len(pairs)} | {per_seed} | {ci} | "
            f"{math.exp(eff.mean):.3f} [{math.exp(eff.lo):.3f}, {math.exp(eff.hi):.3f}] | {verdict} |")
    return {"claim": claim, "comparison": label, **eff.as_dict(), "verdict": verdict}, text


def rows_table(rows: list[dict], setting: str, header: str) -> list[str]:
    """Markdown lines listing every evaluated row (arm, train seed, the row's `setting` key as column `header`),
    sorted by arm, seed, setting."""
    lines = [f"| arm | train seed | {header} | exact Gen PPL [± 1 s.e.] | NLL/token | slips / sample | entropy |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["arm"], -1 if r["train_seed"] is None else r["train_seed"],
                                         str(r[setting]))):
        lines.append(f"| {r['arm']} | {'' if r['train_seed'] is None else r['train_seed']} | {r[setting]} | "
                     f"{r['gen_ppl']:.3f} [{r['gen_ppl_lo']:.2f}, {r['gen_ppl_hi']:.2f}] | {r['nll']:.4f} | "
                     f"{r['slips_per_sample']:.2f} | {r['entropy']:.3f} |")
    return lines


def add_study_arguments(ap, runs: str, out: str, num: int = 256) -> None:
    """The options every seeded study over a folder of runs shares (its own options come before)."""
    ap.add_argument("--runs", default=runs, help="the run folder its training script wrote")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds to evaluate")
    ap.add_argument("--num", type=positive_int, default=num, help="samples per model and setting")
    ap.add_argument("--batch-size", type=positive_int, default=128)
    ap.add_argument("--sample-seed", type=int, default=0,
                    help="sampling seed of training seed 0 and of references evaluated once (default 0)")
    ap.add_argument("--vary-sample-seed", action=argparse.BooleanOptionalAction, default=True,
                    help="sample the models of training seed S with sampling seed SAMPLE_SEED + S (an arm and its "
                         "control still share it), so that the interval over training seeds also holds the sampling "
                         "noise (default); --no-vary-sample-seed samples every seed with SAMPLE_SEED, one shared "
                         "draw that the interval over seeds cannot see (how the studies ran before 2026-12-05)")
    ap.add_argument("--threads", type=positive_int, default=1)
    ap.add_argument("--summarize", action="store_true", help="only rewrite the tables from OUT/rows.json")
    ap.add_argument("--merge", nargs="+", default=[], metavar="DIR",
                    help="first add the rows of these output folders (the same study run apart, e.g. one process "
                         "per seed with --seeds N --out DIR_N); a row OUT already holds is kept")
    ap.add_argument("--out", default=out)


def sample_seed(args, train_seed: int | None) -> int:
    """The sampling seed of the models of `train_seed` (None: a reference evaluated once for all seeds)."""
    return args.sample_seed + (train_seed if args.vary_sample_seed and train_seed is not None else 0)


ROW_KEY = ("arm", "train_seed", "regime", "steps")


def merge_rows(rows: list[dict], dirs: list) -> list[dict]:
    """`rows` plus the rows of each DIR/rows.json not already present (a row is named by ROW_KEY: model, training
    seed and setting; generation is seeded per row, so where a study was split changes no number)."""
    import json

    merged = list(rows)
    seen = {tuple(r.get(k) for k in ROW_KEY) for r in merged}
    for d in dirs:
        path = d / "rows.json"
        if not path.is_file():
            raise SystemExit(f"--merge: no rows.json in '{d}': pass the --out folder of a run of this study")
        for r in json.loads(path.read_text())["rows"]:
            key = tuple(r.get(k) for k in ROW_KEY)
            if key not in seen:
                seen.add(key)
                merged.append(r)
    return merged


def run_study(args, evaluate, summarize) -> int:
    """Rows kept in OUT/rows.json (re-running resumes), `evaluate(args, rows, out)` adds the missing ones unless
    --summarize, then `summarize(rows) -> (verdicts, markdown)` is written to verdicts.json and summary.md."""
    import json
    from pathlib import Path

    import torch

    from experiments.common.output import write_json, write_text

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    rows = json.loads((out / "rows.json").read_text())["rows"] if (out / "rows.json").is_file() else []
    if args.merge:
        rows = merge_rows(rows, [Path(d) for d in args.merge])
        write_json(out / "rows.json", {"args": vars(args), "rows": rows})
    if not args.summarize:
        for r in rows:  # a kept row drawn with another sampling seed would be mixed silently with the new ones
            if "sample_seed" in r and r["sample_seed"] != sample_seed(args, r["train_seed"]):
                raise SystemExit(f"{out / 'rows.json'}: {r['arm']} (training seed {r['train_seed']}) was sampled with "
                                 f"seed {r['sample_seed']}, this run would use {sample_seed(args, r['train_seed'])}; "
                                 "pass the --sample-seed / --[no-]vary-sample-seed it was run with, or another --out")
        rows = evaluate(args, rows, out)
    verdicts, md = summarize(rows)
    write_json(out / "verdicts.json", verdicts)
    write_text(out / "summary.md", md)
    print(md)
    return 0
