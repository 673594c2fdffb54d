r"""Does ADJUST close the joint-sampling gap on the shipped MDLM base? (issue #29) Summary over training seeds.

Reads the `results.json` that `experiments.adjust.sampler_quality` wrote for each ADJUST sampler of
`experiments/adjust/on_bases.sh` (one per training seed, 512+ samples per row: MAUVE needs ~500 per side), and
writes the verdict table: per K, the share of the exact-NLL gap between the marginal baseline (K picks per full pass
from stale marginals) and sequential decoding (one token per pass) that ADJUST closes, per seed and as a mean with a
95% t interval over seeds; MAUVE against a separate sequential sample set, ADJUST and marginal side by side; and
`gap_closed.png`, the exact NLL against K for marginal, ADJUST and sequential.

    python -m experiments.adjust.on_bases --seed-dirs results/adjust/on_bases/s0 results/adjust/on_bases/s1 \
        results/adjust/on_bases/s2 --out results/adjust/on_bases
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.common.output import write_json, write_text
from experiments.common.seeds import seed_effect


def load(dirs: list[str]) -> list[dict]:
    runs = []
    for d in dirs:
        path = Path(d) / "results.json"
        if not path.is_file():
            raise SystemExit(f"--seed-dirs {d}: no results.json there; run experiments.adjust.sampler_quality "
                             f"--out {d} first")
        runs.append(json.loads(path.read_text()))
    return runs


def summarize(runs: list[dict]) -> tuple[list[dict], str]:
    ks = sorted({r["tokens_per_pass"] for run in runs for r in run["rows"] if r["method"] == "ADJUST"})
    out, lines = [], ["| K | seeds | gap closed per seed | mean gap closed [95% t CI] | MAUVE ADJUST (per seed) | "
                      "MAUVE marginal (per seed) | MAUVE ADJUST − marginal [95% t CI] | ADJUST NLL − sequential "
                      "(nats/token) | verdict (target: ≥ 60% closed) |", "|---|---|---|---|---|---|---|---|---|"]
    for k in ks:
        closed, m_adj, m_marg, excess = [], [], [], []
        for run in runs:
            rows = run["rows"]
            adj = next(r for r in rows if r["method"] == "ADJUST" and r["tokens_per_pass"] == k)
            marg = next(r for r in rows if r["method"] == "marginal" and r["tokens_per_pass"] == k)
            seq = next(r for r in rows if r["method"] == "sequential")
            closed.append(adj["gap_closed"])
            m_adj.append(adj["mauve"])
            m_marg.append(marg["mauve"])
            excess.append(adj["nll"] - seq["nll"])
        gap, mauve = seed_effect(closed), seed_effect([a - m for a, m in zip(m_adj, m_marg)])
        verdict = ("met" if gap.lo >= 0.6 else "not met" if gap.hi < 0.6 else "within noise of the target")
        out.append({"k": k, "gap_closed": gap.as_dict(), "mauve_adjust": m_adj, "mauve_marginal": m_marg,
                    "mauve_difference": mauve.as_dict(), "nll_excess_over_sequential": excess, "verdict": verdict})
        lines.append(f"| {k} | {len(closed)} | {', '.join(f'{c:.0%}' for c in closed)} | {gap.mean:.0%} "
                     f"[{gap.lo:.0%}, {gap.hi:.0%}] | {', '.join(f'{m:.3f}' for m in m_adj)} | "
                     f"{', '.join(f'{m:.3f}' for m in m_marg)} | {mauve.mean:+.3f} [{mauve.lo:+.3f}, {mauve.hi:+.3f}] "
                     f"| {', '.join(f'{e:+.3f}' for e in excess)} | {verdict} |")
    ceiling = [next(r for r in run["rows"] if r["method"] == "sequential")["mauve"] for run in runs]
    lines.append(f"\nMAUVE ceiling at this sample size (a second sequential set, seed 1, against the reference): "
                 f"{', '.join(f'{c:.3f}' for c in ceiling)}; samples per row: {runs[0]['meta']['num']}.")
    return out, "\n".join(lines) + "\n"


def plot(runs: list[dict], path: Path) -> None:
    """Exact NLL per token against K: marginal and ADJUST per seed (points) and their means (lines), sequential as
    a band; the gap ADJUST closes is the distance from the marginal line down to the sequential band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paradistill.io import atomic_savefig

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    seq = [next(r for r in run["rows"] if r["method"] == "sequential")["nll"] for run in runs]
    ax.axhspan(min(seq) - 0.01, max(seq) + 0.01, color="k", alpha=0.25,
               label="sequential, one token per pass (seeds' range)")
    for method, color in (("marginal", "C3"), ("ADJUST", "C0")):
        points = sorted((r["tokens_per_pass"], r["nll"]) for run in runs for r in run["rows"] if r["method"] == method)
        ks = sorted({k for k, _ in points})
        ax.plot([k for k, _ in points], [v for _, v in points], "o", color=color, alpha=0.5, ms=4)
        ax.plot(ks, [sum(v for k2, v in points if k2 == k) / sum(1 for k2, _ in points if k2 == k) for k in ks], "-",
                color=color, label=f"{method} (mean of {len(runs)} seeds; points: seeds)")
    ax.set_xscale("log", base=2)
    ks = sorted({r["tokens_per_pass"] for run in runs for r in run["rows"] if r["method"] == "ADJUST"})
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("tokens per full forward pass K")
    ax.set_ylabel("exact NLL per token under the generator (nats)")
    ax.set_title("ADJUST on builtin:mdlm: the joint-sampling gap it closes")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed-dirs", nargs="+", required=True, help="sampler_quality --out folders, one per seed")
    ap.add_argument("--out", default="results/adjust/on_bases")
    args = ap.parse_args(argv)
    runs = load(args.seed_dirs)
    verdicts, md = summarize(runs)
    write_json(Path(args.out) / "verdicts.json", verdicts)
    plot(runs, Path(args.out) / "gap_closed.png")
    write_text(Path(args.out) / "summary.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
