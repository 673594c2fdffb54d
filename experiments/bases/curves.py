"""AR -> MDLM adaptation: validation NELBO of AR-initialised MDLMs against from-scratch MDLMs of the same recipe,
one figure, per training seed. The issue's target: an AR-initialised run reaches the from-scratch run's final
value within 1/4 of its optimizer steps. Runs come from experiments/bases/adaptation.sh: OUT/scratch-s<seed>
(the reference) and one folder per adapted arm and seed, OUT/<arm>-s<seed>.

    python -m experiments.bases.curves --runs runs/adaptation --out results/bases
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections import defaultdict
from pathlib import Path

from experiments.common.models import val_curve
from experiments.common.output import write_json, write_text

ROOT = Path(__file__).resolve().parents[2]
TARGET = 0.25
ARMS = {"shift": "AR-init, shifted + attention annealed over 50 steps",
        "unshifted": "AR-init, unshifted, no annealing"}


def steps_to_reach(curve: list[tuple[int, float]], value: float) -> int | None:
    """The first evaluated step at or below `value` (None: never)."""
    return next((s for s, v in curve if v <= value), None)


def discover(runs: Path) -> dict[str, dict[int, list[tuple[int, float]]]]:
    """{arm: {seed: validation curve}} of every finished OUT/<arm>-s<seed> run (unfinished ones are named, skipped)."""
    found: dict[str, dict[int, list]] = defaultdict(dict)
    for d in sorted(runs.iterdir()) if runs.is_dir() else []:
        m = re.fullmatch(r"(.+)-s(\d+)", d.name)
        if not (m and d.is_dir()):
            continue
        latest = d / "latest.json"
        if not (latest.is_file() and json.loads(latest.read_text()).get("final")):
            print(f"skipping {d}: its training has not finished")
            continue
        found[m.group(1)][int(m.group(2))] = val_curve(d)
    if "scratch" not in found:
        raise SystemExit(f"--runs {runs}: no scratch-s<seed> run in it; run experiments/bases/adaptation.sh first")
    return found


def compare(curves: dict[str, dict[int, list]]) -> dict:
    """Per adapted arm: for each seed, the steps to reach the final value of the scratch run of that seed and
    their fraction of its steps; over seeds, the arm's mean final value against the scratch runs' (Welch interval)
    and the step at which the arm's mean curve reaches the scratch runs' mean final value."""
    scratch, arms = curves["scratch"], {}
    for arm, by_seed in curves.items():
        if arm == "scratch":
            continue
        seeds = []
        for seed, curve in sorted(by_seed.items()):
            if seed not in scratch:
                continue
            (ref_step, ref_val), (last_step, last_val) = scratch[seed][-1], curve[-1]
            reach = steps_to_reach(curve, ref_val)
            fraction = reach / ref_step if reach else None
            seeds.append({"seed": seed, "scratch_steps": ref_step, "scratch_final": ref_val, "steps": last_step,
                          "final": last_val, "reaches_at": reach, "fraction": fraction,
                          "budget_fraction": last_step / ref_step, "met": fraction is not None and fraction <= TARGET})
        if not seeds:
            continue
        finals, refs = [s["final"] for s in seeds], [c[-1][1] for c in scratch.values()]
        diff, lo, hi = welch(finals, refs)
        mean_curve = [(step, sum(by_seed[sd][i][1] for sd in by_seed) / len(by_seed))
                      for i, (step, _) in enumerate(by_seed[min(by_seed)])]
        mean_reach = steps_to_reach(mean_curve, sum(refs) / len(refs))
        ref_steps = scratch[min(scratch)][-1][0]
        arms[arm] = {"label": ARMS.get(arm, arm), "seeds": seeds, "final_mean": sum(finals) / len(finals),
                     "scratch_final_mean": sum(refs) / len(refs), "final_minus_scratch": diff,
                     "final_minus_scratch_ci95": [lo, hi], "seeds_met": sum(s["met"] for s in seeds),
                     "mean_reaches_at": mean_reach, "mean_fraction": mean_reach / ref_steps if mean_reach else None,
                     "met": all(s["met"] for s in seeds)}
    return arms


def welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """mean(a) - mean(b) with its 95% Welch t interval (the seeds of two arms are independent draws: the same
    seed number gives another initialisation in each, so pairing by it would not remove any noise)."""
    from scipy import stats

    diff = sum(a) / len(a) - sum(b) / len(b)
    if len(a) < 2 or len(b) < 2:
        return diff, float("-inf"), float("inf")
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    return diff, float(ci.low), float(ci.high)


def table(arms: dict) -> str:
    lines = ["| arm | seed | its steps (of scratch's) | its final NELBO | scratch final | reaches scratch's final at "
             "| fraction | target <= 1/4 |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for arm, a in arms.items():
        for s in a["seeds"]:
            frac = f"{s['fraction']:.2f}" if s["fraction"] is not None else "never"
            lines.append(f"| {a['label']} | {s['seed']} | {s['steps']} ({s['budget_fraction']:.2f}) | {s['final']:.4f} "
                         f"| {s['scratch_final']:.4f} | {s['reaches_at'] or '-'} | {frac} | "
                         f"{'met' if s['met'] else 'not met'} |")
    lines.append("")
    for arm, a in arms.items():
        lo, hi = a["final_minus_scratch_ci95"]
        n = len(a["seeds"])
        ci = (f"[{lo:+.4f}, {hi:+.4f}] (95% Welch interval)" if math.isfinite(lo) and math.isfinite(hi)
              else "(no interval: one seed on a side)")
        lines.append(f"- {a['label']}: final NELBO {a['final_mean']:.4f} ({f'mean of {n} seeds' if n > 1 else 'one seed'}) "
                     f"vs the from-scratch runs' {a['scratch_final_mean']:.4f}: {a['final_minus_scratch']:+.4f} "
                     f"nats/token {ci}; its mean curve reaches the from-scratch mean at "
                     f"step {a['mean_reaches_at'] or 'never'}; target met on {a['seeds_met']} of {n} seeds")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(ROOT / "runs" / "adaptation"), help="adaptation.sh's OUT folder")
    ap.add_argument("--ar", default="builtin:ar", help="the AR base whose validation NLL is drawn as a line")
    ap.add_argument("--out", default=str(ROOT / "results" / "bases"), help="folder for adaptation.json / .md / .png")
    args = ap.parse_args(argv)
    curves = discover(Path(args.runs))
    arms = compare(curves)
    ar_val = ar_val_loss(args.ar)
    out = Path(args.out)
    write_json(out / "adaptation.json", {"target_fraction": TARGET, "ar_val_nll": ar_val, "arms": arms,
                                         "curves": {a: {str(s): c for s, c in v.items()} for a, v in curves.items()}})
    write_text(out / "adaptation.md", table(arms))
    plot(out / "adaptation.png", curves, ar_val)
    print(table(arms))


def ar_val_loss(ref: str) -> float | None:
    """The recorded validation NLL of an AR base (builtin:NAME's config) or run (its last evaluation)."""
    if Path(ref, "metrics.jsonl").is_file():
        return val_curve(ref)[-1][1]
    if ref.startswith("builtin:"):
        from paradistill import bases

        config = json.loads((bases.resolve(ref) / "config.json").read_text())
        return (config.get("base") or {}).get("val_loss")
    return None


def plot(path: Path, curves: dict, ar_val: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paradistill.io import atomic_savefig

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    colors = {"scratch": "C0", "shift": "C1", "unshifted": "C2"}
    labels = {"scratch": "MDLM from scratch (1000-step schedule)", **{k: v + " (250-step schedule)"
                                                                     for k, v in ARMS.items()}}
    for i, (arm, by_seed) in enumerate(curves.items()):
        for j, (seed, curve) in enumerate(sorted(by_seed.items())):
            ax.plot(*zip(*curve), "-", lw=1.2, alpha=0.8, color=colors.get(arm, f"C{3 + i}"),
                    label=f"{labels.get(arm, arm)}, {len(by_seed)} seed(s)" if j == 0 else None)
    finals = [c[-1][1] for c in curves["scratch"].values()]
    ax.axhline(max(finals), color="C0", ls=":", lw=1,
               label=f"from-scratch final values ({min(finals):.3f}-{max(finals):.3f})")
    ax.axhline(min(finals), color="C0", ls=":", lw=1)
    ax.axvline(TARGET * max(s for c in curves["scratch"].values() for s, _ in c), color="k", ls="-.", lw=1,
               label="1/4 of the from-scratch steps")
    if ar_val is not None:
        ax.axhline(ar_val, color="k", ls="--", lw=1, label=f"AR base validation NLL ({ar_val:.3f})")
    ax.set_xscale("log")
    ax.set_ylim(top=4.5)
    ax.set_xlabel("optimizer steps (log scale)")
    ax.set_ylabel("validation NELBO, nats/token (EMA weights)")
    ax.set_title("AR -> MDLM adaptation (tiny recipe, built-in corpus)")
    ax.grid(alpha=0.3, which="both")
    # below the axes: inside, it hid the ends of the adapted curves, which are the comparison
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
