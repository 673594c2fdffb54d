"""Quality-vs-speed frontier of decoding settings on the built-in corpus (issue 27).

For each setting: N samples scored by the corpus's exact generator (exact NLL per token, with a 95% interval, and
slips = tokens the grammar forbids, per sample), full passes (NFE; for block caches also how many were cheap cached
passes) and wall-clock at batch 1, timed in interleaved rounds (every setting once per round, A B C ... A B C ...)
with the per-round ratio to AR reported as median and min-max. Settings: AR (KV cache), MDLM sequential (one token
per pass, random order = first-hitting, and confidence order), ancestral T, marginal top-K (confidence,
K tokens per pass), confidence threshold tau (whole sequence and semi-AR blocks), the factor and entropy-bounded
rules, prefix / dual block caches, ADJUST K and ADJUST + threshold (the trained sampler with --adjust; else the
marginal baseline), SDTT students (--sdtt) and BD3-LM with its exact cache (--bd3lm).

The models are checkpoint paths: run it on the converged built-in bases when they exist, e.g.
    python -m experiments.bench.decoding_frontier --ar builtin:ar --mdlm builtin:mdlm ...   (once those names resolve)
Writes OUT/frontier.json, OUT/table.md (opening with its verdict), OUT/frontier.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from paradistill.io import atomic_savefig, atomic_write_text
from experiments.common.cli import positive_int


def load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


class RowPassCounter:
    """Wraps a denoiser and counts, per batch row, the passes in which that row still had a masked position to
    predict: the passes the row would have cost if it had been decoded alone (a batched adaptive sampler runs
    until its slowest row is done, so the batch's NFE overstates a sample's). Block views are wrapped too, so the
    count follows semi-autoregressive decoding block by block."""

    def __init__(self, inner, counts=None):
        self.inner, self.counts = inner, counts if counts is not None else {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _count(self, active):
        active = active.reshape(active.shape[0], -1).any(1).long().cpu()
        if "rows" not in self.counts:
            self.counts["rows"] = torch.zeros_like(active)
        self.counts["rows"] += active

    def __call__(self, x, t):
        self._count(x == self.inner.mask_id)
        return self.inner(x, t)

    def masked_log_probs(self, x, t, where):
        from paradistill.sampling.base import log_probs_at

        self._count(where)
        return log_probs_at(self.inner, x, t, where)

    def block_view(self, x, start, end):
        return RowPassCounter(self.inner.block_view(x, start, end), self.counts)

    def commit(self, x_block, start, end):
        return self.inner.commit(x_block, start, end)


def settings(args, have: dict) -> list[dict]:
    """(label, family, checkpoint key, generate() kwargs, optional denoiser factory)."""
    L, B = args.length, args.block
    out = [dict(label="AR (KV cache)", family="ar", model="ar", kw={})]
    m = [dict(label="MDLM sequential, random order (first-hitting)", family="sequential", model="mdlm",
              kw=dict(sampler="first-hitting", steps=L)),
         dict(label="MDLM sequential, confidence order (1/pass)", family="sequential", model="mdlm",
              kw=dict(sampler="confidence", tokens_per_step=1, steps=L))]
    m += [dict(label=f"MDLM ancestral T={t}", family="ancestral", model="mdlm", kw=dict(sampler="ancestral", steps=t))
          for t in args.ancestral]
    m += [dict(label=f"MDLM marginal top-K={k}", family="top-K", model="mdlm",
               kw=dict(sampler="confidence", tokens_per_step=k, steps=L)) for k in args.topk]
    m += [dict(label=f"MDLM threshold tau={t}", family="threshold", model="mdlm",
               kw=dict(sampler="threshold", threshold=t)) for t in args.taus]
    m += [dict(label=f"MDLM threshold tau={t} B={B}", family="threshold+blocks", model="mdlm",
               kw=dict(sampler="threshold", threshold=t, block_size=B)) for t in args.block_taus]
    m += [dict(label=f"MDLM factor f={f}", family="factor", model="mdlm", kw=dict(sampler="factor", threshold=f))
          for f in args.factors]
    m += [dict(label=f"MDLM entropy-bounded gamma={g}", family="eb", model="mdlm", kw=dict(sampler="eb", threshold=g))
          for g in args.gammas]
    for cache in ("none", "prefix", "dual"):
        kw = dict(sampler="confidence", steps=args.block_steps, block_size=B)
        m.append(dict(label=f"MDLM B={B} S={args.block_steps}/block, {cache} cache", family=f"block {cache}",
                      model="mdlm", kw=kw, cache=None if cache == "none" else cache))
        m.append(dict(label=f"MDLM threshold tau={args.cache_tau} B={B}, {cache} cache", family=f"threshold {cache}",
                      model="mdlm", kw=dict(sampler="threshold", threshold=args.cache_tau, block_size=B),
                      cache=None if cache == "none" else cache))
    mode = "adjust" if args.adjust else "marginal"
    name = "ADJUST" if args.adjust else "marginal (ADJUST's baseline)"
    for k in args.adjust_k:
        m.append(dict(label=f"{name} K={k}", family="adjust", model="mdlm",
                      kw=dict(sampler="adjust", tokens_per_pass=k, mode=mode, adjust_checkpoint=args.adjust)))
    m.append(dict(label=f"{name} + threshold tau={args.cache_tau} (K<={args.adjust_max})", family="adjust+threshold",
                  model="mdlm", kw=dict(sampler="adjust", tokens_per_pass=args.adjust_max, mode=mode,
                                        adjust_checkpoint=args.adjust, threshold=args.cache_tau)))
    out += m
    for i, path in enumerate(args.sdtt or []):
        key = f"sdtt{i}"
        have[key] = path
        out += [dict(label=f"SDTT student {Path(path).name} T={t}", family="sdtt", model=key,
                     kw=dict(sampler="ancestral", steps=t)) for t in args.sdtt_steps]
        out.append(dict(label=f"SDTT student {Path(path).name} threshold tau={args.cache_tau}", family="sdtt",
                        model=key, kw=dict(sampler="threshold", threshold=args.cache_tau)))
    if args.bd3lm:
        out += [dict(label=f"BD3-LM (exact cache) S={s}/block", family="bd3lm", model="bd3lm",
                     kw=dict(sampler="ancestral", steps=s)) for s in args.bd3_steps]
        out.append(dict(label=f"BD3-LM (exact cache) threshold tau={args.cache_tau}", family="bd3lm", model="bd3lm",
                        kw=dict(sampler="threshold", threshold=args.cache_tau)))
    return out


def make_call(loaded, s: dict, num: int, length: int, seed: int, count_rows: bool = False):
    """A no-argument callable generating `num` samples of setting `s` in one batch; `counts` gets the block
    cache's full / cached passes and, with `count_rows`, each row's own passes (see RowPassCounter)."""
    from paradistill import generation
    from paradistill.generation import generate

    counts = {}
    kw = dict(s["kw"], **({"block_cache": s["cache"]} if s.get("cache") else {}))

    def call():
        built = []
        original = generation.make_denoiser

        def wrapped(*a, **k):
            den = original(*a, **k)
            built.append(den)
            return RowPassCounter(den, counts) if count_rows else den

        counts.pop("rows", None)
        generation.make_denoiser = wrapped
        try:
            res = generate(loaded, num, length=length, batch_size=num, seed=seed, progress=False, **kw)
        finally:
            generation.make_denoiser = original
        if built and hasattr(built[0], "cached_passes"):
            counts.update(full=built[0].full_passes, cached=built[0].cached_passes)
        return res

    return call, counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ar", required=True, help="AR checkpoint (run dir)")
    ap.add_argument("--mdlm", required=True, help="MDLM checkpoint (run dir)")
    ap.add_argument("--bd3lm", default=None, help="BD3-LM checkpoint (optional)")
    ap.add_argument("--sdtt", nargs="*", default=None, help="SDTT student checkpoints (optional)")
    ap.add_argument("--adjust", default=None, help="ADJUST sampler trained on --mdlm (optional; else marginal)")
    ap.add_argument("--length", type=positive_int, default=64)
    ap.add_argument("--block", type=int, default=16)
    ap.add_argument("--block-steps", type=int, default=4)
    ap.add_argument("--num", type=positive_int, default=64, help="samples per setting for the quality columns")
    ap.add_argument("--rounds", type=positive_int, default=3, help="interleaved timing rounds at batch 1")
    ap.add_argument("--timing-samples", type=int, default=2, help="batch-1 samples per setting per round")
    ap.add_argument("--ancestral", type=int, nargs="*", default=[8, 16, 32])
    ap.add_argument("--topk", type=int, nargs="*", default=[2, 4, 8])
    ap.add_argument("--taus", type=float, nargs="*", default=[0.5, 0.7, 0.8, 0.9, 0.95, 0.99])
    ap.add_argument("--block-taus", type=float, nargs="*", default=[0.7, 0.9])
    ap.add_argument("--cache-tau", type=float, default=0.9)
    ap.add_argument("--factors", type=float, nargs="*", default=[0.5, 1.0, 2.0])
    ap.add_argument("--gammas", type=float, nargs="*", default=[0.1, 0.5, 1.0])
    ap.add_argument("--adjust-k", type=int, nargs="*", default=[2, 4])
    ap.add_argument("--adjust-max", type=int, default=8)
    ap.add_argument("--sdtt-steps", type=int, nargs="*", default=[8, 16])
    ap.add_argument("--bd3-steps", type=int, nargs="*", default=[2, 4])
    ap.add_argument("--families", default=None,
                    help="comma-separated families to run (e.g. sdtt,bd3lm); AR always runs as the reference")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=positive_int, default=1)
    ap.add_argument("--out", default="results/decoding_frontier")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from paradistill import api
    from paradistill.eval import metrics as M
    from paradistill.eval.evaluate import grammar
    from tqdm.auto import tqdm

    paths = {"ar": args.ar, "mdlm": args.mdlm, "bd3lm": args.bd3lm}
    todo = settings(args, paths)
    if args.families:
        keep = {f.strip() for f in args.families.split(",")}
        todo = [s for s in todo if s["family"] == "ar" or s["family"] in keep]
    needed = {s["model"] for s in todo}
    loaded = {k: api.load(v) for k, v in paths.items() if v and k in needed}
    G = grammar()
    rows = []
    for s in tqdm(todo, desc="quality"):
        ld = loaded[s["model"]]
        call, counts = make_call(ld, s, args.num, args.length, args.seed, count_rows=True)
        res = call()
        rows_passes = counts.get("rows")
        tok = ld.tokenizer
        toks = [M.strip_sample(r, None, tok.pad_id) for r in res.tokens.tolist()]
        totals, cnt = M.exact_nll(toks, G)
        summ = M.nll_summary(totals, cnt)
        slips = M.grammar_violations(toks, G)
        per_tok = totals / np.maximum(cnt, 1)
        rows.append({"label": s["label"], "family": s["family"], "checkpoint": paths[s["model"]],
                     "kwargs": {k: v for k, v in s["kw"].items()}, "cache": s.get("cache"),
                     "exact_nll": summ["nll_per_token"], "exact_nll_ci95": 1.96 * float(per_tok.std(ddof=1))
                     / math.sqrt(len(per_tok)), "slips_per_sample": float(slips.mean()),
                     "nfe": float(np.mean(res.nfe)), "cached_passes": counts.get("cached"),
                     # a sample's own passes (what it costs decoded alone); the batch's NFE where not counted
                     "passes_per_sample": float(rows_passes.float().mean()) if rows_passes is not None else None,
                     "nll_se": float(per_tok.std(ddof=1)) / math.sqrt(len(per_tok)),
                     "full_passes": counts.get("full", float(np.mean(res.nfe))),
                     "sampler_passes": (res.info.get("batch_extra") or [{}])[0].get("sampler_passes")})
    # wall-clock at batch 1, interleaved rounds
    calls = [make_call(loaded[s["model"]], s, 1, args.length, args.seed + 1)[0] for s in todo]
    for c in calls:
        c()  # warm-up
    times = [[] for _ in todo]
    loads = [{"when": "timing start", "loadavg": load_average()}]
    for i in tqdm(range(args.rounds), desc="timing rounds"):
        loads.append({"when": f"round {i}", "loadavg": load_average()})
        for i, c in enumerate(calls):
            start = time.perf_counter()
            for _ in range(args.timing_samples):
                c()
            times[i].append((time.perf_counter() - start) / args.timing_samples)
    for row, t in zip(rows, times):
        row["seconds_per_sample"] = statistics.median(t)
        row["tokens_per_s"] = (args.length - 1) / row["seconds_per_sample"]
        row["times"] = t
        per = sorted(a / b for a, b in zip(times[0], t))  # AR time / this time = speed multiple of AR
        row["x_ar_tokens_per_s"] = {"median": per[len(per) // 2], "min": per[0], "max": per[-1]}
    loads.append({"when": "end", "loadavg": load_average()})
    result = {"args": vars(args), "threads": args.threads, "load_average": loads, "rows": rows,
              "targets": targets(rows)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "frontier.json", json.dumps(result, indent=2))
    atomic_write_text(out / "table.md", table(result))
    plot(rows, out / "frontier.png")
    print((out / "table.md").read_text())
    return 0


def _find(rows, label):
    return next((r for r in rows if r["label"] == label), None)


def passes(row) -> float:
    """Full passes one sample costs: counted per row where the script could (adaptive samplers), else the NFE."""
    return row["passes_per_sample"] if row.get("passes_per_sample") is not None else row["nfe"]


def targets(rows) -> dict:
    ar = rows[0]
    t = {}
    within = [r for r in rows[1:] if r["exact_nll"] <= 1.10 * ar["exact_nll"]]
    if within:
        best = max(within, key=lambda r: r["x_ar_tokens_per_s"]["median"])
        t["headline"] = {"setting": best["label"], "exact_nll": best["exact_nll"], "ar_exact_nll": ar["exact_nll"],
                         "x_ar_tokens_per_s": best["x_ar_tokens_per_s"]}
    else:
        t["headline"] = {"setting": None, "ar_exact_nll": ar["exact_nll"],
                         "closest": min(rows[1:], key=lambda r: r["exact_nll"])["label"]}
    seq = next((r for r in rows if r["label"].startswith("MDLM sequential, confidence")), None)
    if seq:
        thr = [r for r in rows if r["family"] in ("threshold", "threshold+blocks", "factor", "eb", "threshold none",
                                                  "threshold prefix", "threshold dual")]
        ok = [r for r in thr if r["exact_nll"] <= 1.05 * seq["exact_nll"] and passes(r) <= passes(seq) / 3]
        t["threshold_vs_sequential"] = {
            "sequential": seq["label"], "sequential_nll": seq["exact_nll"], "sequential_passes": passes(seq),
            "met_by": [r["label"] for r in ok],
            "rows": [{"label": r["label"], "nll_ratio": r["exact_nll"] / seq["exact_nll"],
                      "passes_ratio": passes(r) / passes(seq)} for r in thr]}
    for fam in ("block", "threshold"):
        none = next((r for r in rows if r["family"] == f"{fam} none"), None)
        for mode in ("prefix", "dual"):
            c = next((r for r in rows if r["family"] == f"{fam} {mode}"), None)
            if none and c:
                per = sorted(a / b for a, b in zip(none["times"], c["times"]))
                se = math.hypot(c.get("nll_se", 0.0), none.get("nll_se", 0.0)) / none["exact_nll"]
                t[f"{fam} {mode} cache vs none"] = {"speedup_median": per[len(per) // 2], "min": per[0],
                                                    "max": per[-1], "nll_change": c["exact_nll"] / none["exact_nll"] - 1,
                                                    "nll_change_ci95": 1.96 * se}
    return t


def table(result) -> str:
    rows, t, a = result["rows"], result["targets"], result["args"]
    h = t["headline"]
    lines = ["# Decoding frontier on the built-in corpus", ""]
    if h.get("setting"):
        x = h["x_ar_tokens_per_s"]
        lines.append(f"**Verdict:** the fastest diffusion setting within 10% of AR's exact NLL ({h['ar_exact_nll']:.3f}) "
                     f"is **{h['setting']}** (NLL {h['exact_nll']:.3f}) at **{x['median']:.2f}x** AR's tokens/s at "
                     f"batch 1 (rounds {x['min']:.2f}-{x['max']:.2f}x), L={a['length']}, {result['threads']} thread(s).")
    else:
        lines.append(f"**Verdict:** no diffusion setting comes within 10% of AR's exact NLL ({h['ar_exact_nll']:.3f}); "
                     f"the closest is {h['closest']}.")
    tv = t.get("threshold_vs_sequential")
    if tv:
        lines.append(f"Threshold decoding within 5% of sequential (confidence order, NLL {tv['sequential_nll']:.3f}, "
                     f"{tv['sequential_passes']:.0f} passes) with <= 1/3 of its passes: "
                     + (", ".join(tv["met_by"]) if tv["met_by"] else "none") + ".")
        best = min(tv["rows"], key=lambda q: q["passes_ratio"] if q["nll_ratio"] <= 1.05 else float("inf"))
        if best["nll_ratio"] <= 1.05:
            lines.append(f"Fewest passes within 5% of sequential: {best['label']} ({100 * best['passes_ratio']:.0f}% of "
                         f"its passes, NLL {100 * (best['nll_ratio'] - 1):+.1f}%).")
    for k, v in t.items():
        if k.endswith("cache vs none"):
            lines.append(f"- {k}: {v['speedup_median']:.2f}x wall-clock (rounds {v['min']:.2f}-{v['max']:.2f}x), "
                         f"exact-NLL change {100 * v['nll_change']:+.1f}% (± {100 * v['nll_change_ci95']:.1f}%)")
    lines += ["", f"Models: AR `{a['ar']}`, MDLM `{a['mdlm']}`" + (f", BD3-LM `{a['bd3lm']}`" if a["bd3lm"] else "")
              + (f", SDTT {a['sdtt']}" if a["sdtt"] else "") + (f", ADJUST `{a['adjust']}`" if a["adjust"] else
                                                                  " (no trained ADJUST sampler: its marginal baseline)")
              + f". {a['num']} samples per setting (temperature 1), timing at batch 1 over {a['rounds']} interleaved "
              "rounds.", "",
              "Passes per sample: a sample's own full passes (counted per row for the diffusion samplers; ADJUST's "
              "are its batch's NFE); batch NFE: the passes of the batch of all samples (its slowest row).", "",
              "| setting | exact NLL/token (95% CI) | slips/sample | passes per sample | batch NFE | of which cached | "
              "s/sample (b=1) | x AR tokens/s (min-max) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        x = r["x_ar_tokens_per_s"]
        cached = "" if r["cached_passes"] is None else f"{r['cached_passes']}"
        sp = f" (+{r['sampler_passes']} sampler)" if r.get("sampler_passes") else ""
        lines.append(f"| {r['label']} | {r['exact_nll']:.3f} ± {r['exact_nll_ci95']:.3f} | {r['slips_per_sample']:.2f} | "
                     f"{passes(r):.1f}{sp} | {r['nfe']:.0f} | {cached} | {r['seconds_per_sample'] * 1000:.1f} ms | "
                     f"{x['median']:.2f} ({x['min']:.2f}-{x['max']:.2f}) |")
    return "\n".join(lines) + "\n"


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    fams = sorted({r["family"] for r in rows})
    cmap = plt.get_cmap("tab20")
    for i, fam in enumerate(fams):
        rs = [r for r in rows if r["family"] == fam]
        for ax, key in zip(axes, ("passes", "seconds_per_sample")):
            ax.plot([passes(r) if key == "passes" else 1000 * r[key] for r in rs], [r["exact_nll"] for r in rs], "o-",
                    color=cmap(i % 20), label=fam, ms=4)
    axes[0].set_xlabel("full passes per sample")
    axes[1].set_xlabel("ms per sample at batch 1")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_ylabel("exact NLL per token (lower is better)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
