"""`DIR/report.md` and `DIR/pareto.png` for `paradistill quickstart`: one table per method and step count, the
best setting per speed budget in bold, the checks the quick-start makes (GD vs MDLM, SDTT vs its teacher,
ADJUST vs marginal, speed vs KV-cached AR), and quality against latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import atomic_savefig, atomic_write_text

# the rows the report checks against the target of 2x the AR's Gen PPL; they get plan["check_samples"]
TARGET_ROWS = (("MDLM T=64", "ancestral, 64 steps"), ("MDLM T=L (first-hitting)", "one token per pass"))
AR_ROW = "AR (KV cache)"

GROUPS = [("AR", "autoregressive teacher"), ("MDLM", "masked diffusion (baseline)"), ("GD-MDLM", "Gumbel Distillation"),
          ("BD3-LM", "block diffusion"), ("SDTT", "self-distillation through time"),
          (("sequential", "marginal", "ADJUST"), "ADJUST family (one frozen MDLM)")]


def quality(row: dict[str, Any]) -> float | None:
    return row.get("exact_ppl") if row.get("exact_ppl") is not None else row.get("gen_ppl")


def compare(a: dict[str, Any], b: dict[str, Any]) -> str:
    """'lower' / 'higher' / 'within noise': exact NLL per token of row a against row b, at 2 standard errors
    (per-sample NLLs, independent samples). Rows without standard errors compare by the point estimate."""
    import math

    qa, qb = quality(a), quality(b)
    sa, sb = a.get("exact_nll_se"), b.get("exact_nll_se")
    if sa is not None and sb is not None and a.get("exact_ppl") and b.get("exact_ppl"):
        if abs(math.log(qa) - math.log(qb)) < 2 * math.hypot(sa, sb):
            return "within noise"
    return "lower" if qa < qb else "higher"


def target_check(a: dict[str, Any], ref: dict[str, Any], limit: float) -> str:
    """Gen PPL ratio a / ref against `limit` with its 95% interval (from the per-sample NLL standard errors of the
    two independent sample sets): 'met' only when the whole interval is at or under the limit, 'NOT met' when the
    whole interval is above it, otherwise the sample is too small to say. Rows without standard errors are judged
    by the point estimate, and say so."""
    import math

    from ..eval.metrics import ppl_ratio

    sa, sb = a.get("exact_nll_se"), ref.get("exact_nll_se")
    if sa is None or sb is None or not (a.get("exact_ppl") and ref.get("exact_ppl")):
        r = quality(a) / quality(ref)
        met = "met" if r <= limit else "NOT met"
        return f"{r:.2f}x, no standard errors; target <= {limit:g}x: {met} (point estimate)"
    r, lo, hi = ppl_ratio(math.log(a["exact_ppl"]), sa, math.log(ref["exact_ppl"]), sb)
    if hi <= limit:
        verdict = "met"
    elif lo > limit:
        verdict = "NOT met"
    else:
        verdict = "not settled: the interval contains the target (more --check-samples narrow it)"
    return f"{r:.2f}x [95% CI {lo:.2f}, {hi:.2f}]; target <= {limit:g}x: {verdict}"


def _f(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def best_per_budget(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Latency budgets at the measured latencies of the AR row and of 1/2, 1/4, 1/8 of it: the best quality
    within each budget."""
    ar = next((r for r in rows if r["label"].startswith("AR")), None)
    if ar is None or not ar.get("seconds_per_sample"):
        return {}
    marks = {}
    for frac in (1.0, 0.5, 0.25, 0.125):
        budget = ar["seconds_per_sample"] * frac
        ok = [r for r in rows if r.get("seconds_per_sample") and r["seconds_per_sample"] <= budget and quality(r)]
        if ok:
            best = min(ok, key=quality)
            marks.setdefault(best["label"], f"best within {frac:g}x AR latency")
    return marks


def _table(rows, marks, qname) -> list[str]:
    lines = [f"| setting | NFE (full passes) | sampler passes | s/sample | tokens/s | {qname} | slips/sample | entropy "
             "| MAUVE |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        label = f"**{r['label']}** ({marks[r['label']]})" if r["label"] in marks else r["label"]
        q = _f(quality(r), 2)
        lines.append(f"| {label} | {_f(r.get('nfe_mean'), 1)} | {_f(r.get('sampler_passes'), 1)} | "
                     f"{_f(r.get('seconds_per_sample'), 4)} | {_f(r.get('tokens_per_second'), 0)} | "
                     f"{f'**{q}**' if r['label'] in marks else q} | {_f(r.get('slips'), 1)} | {_f(r.get('entropy'), 3)} | "
                     f"{_f(r.get('mauve'), 3)} |")
    return lines


def _row(rows, label):
    return next((r for r in rows if r["label"] == label), None)


def _verdict(cmp: str, good: str, bad: str, tie: str = "within noise") -> str:
    """One training seed: a difference beyond the samples' noise is reported as such, never as 'better' (the
    seeded studies in results/ show seed-to-seed swings of tens of percent at this scale)."""
    if cmp == "within noise":
        return tie
    return f"{good if cmp == 'lower' else bad} beyond sampling noise; one training seed, not a claim"


def checks(rows: list[dict[str, Any]], plan: dict[str, Any]) -> list[str]:
    out = []
    ar = _row(rows, AR_ROW)
    for label, what in TARGET_ROWS:
        m = _row(rows, label)
        if ar and m and quality(ar) and quality(m):
            out.append(f"- {label} ({what}) vs AR: Gen PPL {quality(m):.2f} vs {quality(ar):.2f} "
                       f"({target_check(m, ar, 2.0)})")
    for t in [t for t in plan["gd_steps"] if t <= 16]:
        gd, base = _row(rows, f"GD-MDLM T={t}"), _row(rows, f"MDLM T={t}")
        if gd and base and quality(gd) and quality(base):
            change = 100 * (quality(gd) / quality(base) - 1)
            out.append(f"- GD-MDLM vs MDLM at T={t}: Gen PPL {quality(gd):.2f} vs {quality(base):.2f} ({change:+.1f}%), "
                       f"entropy {gd['entropy']:.3f} vs {base['entropy']:.3f} "
                       f"({_verdict(compare(gd, base), 'lower', 'higher')})")
    teacher = _row(rows, f"MDLM T={plan['sdtt_from']}")
    for r in rows:
        if r["label"].startswith("SDTT") and teacher and quality(r):
            verdict = _verdict(compare(r, teacher), "lower", "higher")
            out.append(f"- {r['label']} vs its teacher MDLM T={plan['sdtt_from']}: Gen PPL {quality(r):.2f} vs "
                       f"{quality(teacher):.2f} ({verdict}), entropy {r['entropy']:.3f} vs {teacher['entropy']:.3f}")
    seq = _row(rows, "sequential (K=1)")
    for k in plan["adjust_k"]:
        adj, marg = _row(rows, f"ADJUST K={k}"), _row(rows, f"marginal K={k}")
        if seq and adj and marg and quality(seq) and quality(adj) and quality(marg):
            import math

            gap = math.log(quality(marg)) - math.log(quality(seq))
            closed = 100 * (math.log(quality(marg)) - math.log(quality(adj))) / gap if gap > 0 else float("nan")
            out.append(f"- ADJUST K={k}: Gen PPL {quality(adj):.2f} vs marginal {quality(marg):.2f} vs sequential "
                       f"{quality(seq):.2f} (closes {closed:.0f}% of the NLL gap); MAUVE vs sequential "
                       f"{_f(adj.get('mauve'))} vs marginal {_f(marg.get('mauve'))}")
    return out


def _check_samples_text(plan: dict[str, Any]) -> str:
    n = plan.get("check_samples", plan["num_samples"])
    if n == plan["num_samples"]:
        return ""
    rows = ", ".join([AR_ROW] + [label for label, _ in TARGET_ROWS])
    return f" ({n} for the rows the 2x target is checked on: {rows})"


def _steps_text(plan: dict[str, Any]) -> str:
    tail = (f"SDTT {plan['sdtt_steps_per_round']} per round, ADJUST {plan['adjust_steps']} "
            f"(+{plan['adjust_trajectories']} trajectories).")
    if plan.get("bases"):
        return (f"bases: the shipped {', '.join(f'`{v}`' for v in plan['bases'].values())} (not trained here; "
                f"`--from-scratch` trains them); optimizer steps: GD-MDLM {plan['base_steps']} (from the MDLM base), "
                + tail)
    return (f"optimizer steps: AR {plan['ar_steps']}, MDLM and GD-MDLM {plan['base_steps']}, BD3-LM "
            f"{plan['bd3_steps']}, " + tail)


def write_report(out: Path, plan: dict[str, Any], results: dict[str, Any], elapsed: float) -> Path:
    rows = [r for stage in ("eval-a", "eval-b") for r in results.get(stage, {}).get("rows", [])]
    qname = "exact Gen PPL" if plan["builtin"] else "Gen PPL (AR judge)"
    marks = best_per_budget(rows)
    lines = ["# paradistill quick-start report", "",
             f"corpus `{plan['corpus']}`, tokenizer `{plan['tokenizer']}`, L={plan['seq_len']}, "
             f"{plan['num_samples']} samples per setting{_check_samples_text(plan)}, seed {plan['seed']}; total time {elapsed / 60:.1f} min "
             f"(budget {plan['budget_minutes']:.0f} min); " + _steps_text(plan), "",
             f"Quality is {qname} (lower is better; "
             + ("the generator's own entropy rate gives the floor, see the `exact` block of each eval JSON" if plan["builtin"]
                else "the AR teacher is the judge") + "), always with unigram entropy beside it. "
             "**Bold**: the best quality within a latency budget (multiples of the AR row's seconds per sample). "
             + ("Slips/sample: tokens the generator's grammar forbids (each costs ~12 nats). A check calls two exact "
                "scores 'within noise' when their NLLs per token differ by less than 2 standard errors; a target "
                "counts as met only when the ratio's whole 95% interval is inside it. "
                if plan["builtin"] else ""), ""]
    for prefix, title in GROUPS:
        group = [r for r in rows if r["label"].startswith(prefix)]
        if not group:
            continue
        lines += [f"## {title}", ""]
        lines += _table(group, marks, qname) + [""]
    lines += ["## Checks", ""] + (checks(rows, plan) or ["- (not enough rows)"]) + [""]
    speed = results.get("speed", {}).get("rows", [])
    if speed:
        lines += ["## Speed against KV-cached AR (one process, trained checkpoints)", "",
                  "| model | batch | NFE | latency (s) | tokens/s | vs AR |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['label']} | {r['batch']} | {r['nfe']} | {r['latency_s']:.4f} | {r['tokens_per_s']:.0f} | "
                  f"{r['speedup_vs_ar']:.2f}x |" for r in speed]
        lines += ["", "AR here decodes eagerly. `paradistill sample --compile` decodes it through torch.compile (static "
                  "KV cache), which is much faster at batch 1: `paradistill bench --compile` measures both "
                  "side by side.", ""]
    lines += ["Per-setting metrics: `eval/*.json`; samples: `eval/*.samples.jsonl`; logs: `logs/`.", ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    plot_pareto(rows, out / "pareto.png", qname)
    return path


def plot_pareto(rows: list[dict[str, Any]], path: Path, qname: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(r["seconds_per_sample"], quality(r), r["label"]) for r in rows if r.get("seconds_per_sample") and quality(r)]
    if not pts:
        return
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    colors = {}
    for x, y, label in pts:
        method = label.split(" ")[0]
        color = colors.setdefault(method, f"C{len(colors) % 10}")
        ax.scatter(x, y, color=color, s=30, label=method if method not in ax.get_legend_handles_labels()[1] else None)
        ax.annotate(label.split(" ", 1)[-1] if " " in label else label, (x, y), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    front, best = [], float("inf")
    for x, y, _ in sorted(pts):
        if y < best:
            front.append((x, y))
            best = y
    ax.plot([p[0] for p in front], [p[1] for p in front], "k--", lw=1, label="Pareto front")
    ax.set_xscale("log")
    ys = [p[1] for p in pts]
    if min(ys) > 0 and max(ys) / min(ys) > 20:  # exact Gen PPL spans orders of magnitude between AR and MDLM
        ax.set_yscale("log")
    ax.set_xlabel("seconds per sample (batch of samples, CPU)")
    ax.set_ylabel(qname)
    ax.set_title("quality vs latency")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
