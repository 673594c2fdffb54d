r"""Quality against diversity: exact Gen PPL vs entropy of a GD student and of its baseline at several temperatures.

A lower entropy alone lowers Gen PPL, so a student that samples with less entropy than its baseline can look better
without being better. This script takes rows written by experiments/eval/sample_quality.py (--json files), groups them into
series by a regular expression on the row's model label (--series NAME=REGEX; the first series is the reference:
the baseline sampled at several softmax temperatures), and for every point of the other series reports the
reference's Gen PPL *at the same entropy* (log Gen PPL interpolated linearly in entropy between the two nearest
reference points; no extrapolation) and the change against it. One panel per step count in the figure (--png).

    python -m experiments.eval.entropy_matched results/gumbel_distillation/{bd3lm,bd3lm_temp0.7,bd3lm_temp0.8,bd3lm_temp0.9,\
bd3lm_skip,bd3lm_skip_more_tau}.json --series "BD3-LM, softmax temperature=bd3lm(-temp.*)?" \
        --series "GD-BD3LM + skip, noise temperature=gd-bd3lm-skip( tau=.*)?" \
        --json results/gumbel_distillation/frontier_bd3lm.json --png results/gumbel_distillation/frontier_bd3lm.png
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

from experiments.common.output import write_text
from experiments.common.seeds import seed_effect


def eval_rows(path: Path) -> list[dict]:
    """The rows of a experiments/eval/sample_quality.py --json output; SystemExit naming the file if it is not one."""
    hint = "give outputs of experiments/eval/sample_quality.py --json"
    if not path.is_file():
        raise SystemExit(f"{path}: no such file ({hint})")
    try:
        rows = json.loads(path.read_text())["rows"]
    except (ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"{path}: not readable as gumbel_eval rows ({type(err).__name__}: {err}; {hint})") from None
    if not all(isinstance(r, dict) and {"model", "steps", "entropy", "gen_ppl"} <= r.keys() for r in rows):
        raise SystemExit(f"{path}: its rows lack model / steps / entropy / gen_ppl ({hint})")
    return rows


def temperature_of(row: dict) -> float:
    """The knob that moves a point along its series: the noise temperature of a GD student, else the softmax one."""
    return row["noise_temperature"] if row.get("noise_temperature") is not None else row.get("temperature", 1.0)


def _neighbours(reference: list[dict], entropy: float) -> tuple[dict, dict] | None:
    """The two reference rows whose entropies bracket `entropy` (nearest on each side); None outside the range."""
    pts = sorted(reference, key=lambda r: r["entropy"])
    for r0, r1 in zip(pts, pts[1:]):
        if r0["entropy"] <= entropy <= r1["entropy"]:
            return r0, r1
    return None


def matched(reference: list[dict], entropy: float) -> float | None:
    """Reference Gen PPL at `entropy` (log-linear interpolation between neighbours); None outside its range."""
    pair = _neighbours(reference, entropy)
    if pair is None:
        return None
    (e0, l0), (e1, l1) = ((r["entropy"], math.log(r["gen_ppl"])) for r in pair)
    w = 0.0 if e1 == e0 else (entropy - e0) / (e1 - e0)
    return math.exp(l0 + w * (l1 - l0))


def matched_se(reference: list[dict], entropy: float) -> float | None:
    """Standard error of the reference's log Gen PPL (its NLL per token) at `entropy`: the larger of the two
    neighbours' `nll_se` (an upper bound for the interpolated value); None outside the range or when a row lacks it."""
    pair = _neighbours(reference, entropy)
    ses = [r.get("nll_se") for r in pair] if pair else [None]
    return None if None in ses else max(ses)


def series_summary(out: list[dict], ref_name: str) -> list[dict]:
    """Per series (other than the reference) and step count: the points' ratios to the reference at the same
    entropy, combined as a geometric mean with a 95% t interval over the points (each point one training seed, say),
    never narrower than the points' own sampling error (their `nll_se`, when every point has it) allows.
    The reference curve is one evaluation shared by every point, so its sampling error (the mean of the points'
    `reference_nll_se`, when known) is added in quadrature, as `seed_effect`'s shared_se. Points outside the
    reference's entropy range are left out and counted."""
    groups: dict[tuple[str, object], list[dict]] = {}
    for r in out:
        if r["series"] != ref_name:
            groups.setdefault((r["series"], r["steps"]), []).append(r)
    summary = []
    for (name, steps), members in groups.items():
        inside = [r for r in members if r["change_at_same_entropy"] is not None]
        ses = [r.get("reference_nll_se") for r in inside]
        own = [r.get("nll_se") for r in inside]
        shared = sum(ses) / len(ses) if ses and None not in ses else None
        row = {"series": name, "steps": steps, "points": len(inside), "outside_range": len(members) - len(inside),
               "reference_nll_se": shared}
        if inside:
            e = seed_effect([math.log1p(r["change_at_same_entropy"]) for r in inside], None if None in own else own,
                            shared_se=shared)
            row |= {"ratio": math.exp(e.mean), "lo": math.exp(e.lo), "hi": math.exp(e.hi), "floored": e.floored,
                    "verdict": e.verdict("lower than the reference", "higher than the reference")}
        summary.append(row)
    return summary


def summary_lines(summary: list[dict]) -> list[str]:
    lines = ["| series | T | points (outside the reference's range) | Gen PPL / reference at same entropy [95% CI] "
             "| verdict |", "|---|---|---|---|---|"]
    for r in sorted(summary, key=lambda r: (step_order(r["steps"]), r["series"])):
        ratio = (f"{r['ratio']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]" + (" ‡" if r.get("floored") else "")
                 if "ratio" in r else "")
        lines.append(f"| {r['series']} | {r['steps']} | {r['points']} ({r['outside_range']}) | {ratio} | "
                     f"{r.get('verdict', 'no point in range')} |")
    return lines


def step_order(steps):
    """Step counts in numeric order, then 'L' (first-hitting)."""
    return (0, steps, "") if isinstance(steps, int) else (1, 0, str(steps))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="outputs of experiments/eval/sample_quality.py --json")
    ap.add_argument("--series", action="append", required=True, metavar="NAME=REGEX",
                    help="rows whose model label fully matches REGEX; the first series is the reference")
    ap.add_argument("--json-out", "--json", dest="out", default=None, help="write the rows here (+ .md beside it)")
    ap.add_argument("--png", default=None, help="write the figure here")
    ap.add_argument("--panel-title", default="T = {} steps", help="title of each panel ({} = the step count)")
    args = ap.parse_args()
    rows, seen = [], set()
    for p in args.json:  # a row reused by --reuse appears in several files: keep it once
        for r in eval_rows(Path(p)):
            key = (r["model"], r.get("sampler"), str(r["steps"]), r.get("noise_temperature"), r.get("temperature", 1.0))
            if key not in seen:
                seen.add(key)
                rows.append(r)
    series = {}
    for item in args.series:
        if "=" not in item:
            raise SystemExit(f"--series {item}: takes NAME=REGEX (e.g. 'BD3-LM=bd3lm-temp.*')")
        name, pattern = item.split("=", 1)
        series[name] = [r for r in rows if re.fullmatch(pattern, r["model"])]
        if not series[name]:
            raise SystemExit(f"--series {item}: no row's model label matches {pattern!r}")
    ref_name = next(iter(series))
    steps = sorted({r["steps"] for s in series.values() for r in s}, key=step_order)
    out = []
    for name, members in series.items():
        for r in members:
            ref = [q for q in series[ref_name] if q["steps"] == r["steps"]]
            m = None if name == ref_name else matched(ref, r["entropy"])
            out.append({"series": name, "model": r["model"], "steps": r["steps"], "temperature": temperature_of(r),
                        "entropy": r["entropy"], "gen_ppl": r["gen_ppl"], "reference_at_same_entropy": m,
                        "change_at_same_entropy": None if m is None else r["gen_ppl"] / m - 1,
                        "nll_se": r.get("nll_se"),
                        "reference_nll_se": None if name == ref_name else matched_se(ref, r["entropy"])})
    lines = [f"Reference: {ref_name}. 'at same entropy': its Gen PPL interpolated to the point's entropy.\n",
             "| series | T | temperature | entropy | exact Gen PPL | reference at same entropy | change |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in sorted(out, key=lambda r: (step_order(r["steps"]), r["series"] != ref_name, r["series"], r["temperature"])):
        ref = "" if r["reference_at_same_entropy"] is None else f"{r['reference_at_same_entropy']:.1f}"
        chg = "" if r["change_at_same_entropy"] is None else f"{100 * r['change_at_same_entropy']:+.1f}%"
        lines.append(f"| {r['series']} | {r['steps']} | {r['temperature']} | {r['entropy']:.3f} | {r['gen_ppl']:.1f} | "
                     f"{ref} | {chg} |")
    summary = series_summary(out, ref_name)
    lines += ["", "Each series at each T, its points combined (geometric mean of the ratios, 95% t interval over the "
              "points, widened by the reference's own sampling error where its rows give it; ‡: the points agree more "
              "closely than their own sampling error allows, and that error sets the width):", "",
              *summary_lines(summary)]
    md = "\n".join(lines)
    print(md)
    if args.out:
        write_text(args.out, json.dumps({"args": vars(args), "rows": out, "summary": summary}, indent=2))
        write_text(Path(args.out).with_suffix(".md"), md + "\n")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(steps), figsize=(4.2 * len(steps), 3.8), squeeze=False)
        for ax, t in zip(axes[0], steps):
            for name in series:
                pts = sorted((r["entropy"], r["gen_ppl"], r["temperature"]) for r in out
                             if r["series"] == name and r["steps"] == t)
                joined = len({p[2] for p in pts}) > 1  # a temperature sweep is a curve; seeds are separate points
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name,
                        linestyle="-" if joined else "none")
                for e, g, temp in pts:
                    ax.annotate(f"{temp:g}", (e, g), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set(xlabel="entropy (nats)", ylabel="exact Gen PPL", yscale="log", title=args.panel_title.format(t))
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)


if __name__ == "__main__":
    main()
