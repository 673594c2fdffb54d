r"""Evaluate an ADJUST sampler on the built-in corpus against the one-token-per-pass reference.

Rows: sequential (K = 1: one full pass per token, lowest entropy first; the reference), then for each K the
marginal baseline (K lowest-entropy picks per full pass from the stale marginals) and ADJUST (a sampler pass after
each pick). Columns: MAUVE vs the sequential samples (MiniLM features, paradistill.eval.mauve), exact Gen PPL =
exp(mean NLL over samples and positions 1..L-1 under StoryGrammar, the corpus's generator), unigram entropy,
full passes and sampler passes per sequence, wall-clock seconds per sample, and the share of the exact-NLL gap
between marginal and sequential that ADJUST closes. The MAUVE reference is a sequential set drawn with seed 0;
every evaluated row uses seed 1, so the sequential seed-1 row gives MAUVE's ceiling at this sample size.

    python -m experiments.adjust.sampler_quality --base runs/base/mdlm --adjust runs/adjust/mdlm --ks 2 4 8 --num 128 \
        --out results/adjust
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from experiments.common.models import load_run
from experiments.common.output import write_json, write_text
from experiments.common.scoring import ADJUST_FIELDS, exact_score
from experiments.common.cli import positive_int


def warm_up(loaded, adjust_run, option: str) -> None:
    """Load the ADJUST sampler `adjust_run` on `loaded` (and fingerprint the base) with two samples; a missing or
    mismatched sampler ends the program with one line naming `option`."""
    from paradistill import api
    from paradistill.errors import UserError

    try:
        api.generate(loaded, 2, sampler="adjust", tokens_per_pass=2, mode="adjust", adjust_checkpoint=adjust_run,
                     batch_size=2, progress=False)
    except UserError as err:
        raise SystemExit(f"{option} {adjust_run}: {err}") from None


def run_row(loaded, label, k, mode, args, seed, threshold=None):
    from paradistill import api

    res = api.generate(loaded, args.num, sampler="adjust", tokens_per_pass=k, mode=mode, batch_size=args.batch_size,
                       seed=seed, adjust_checkpoint=args.adjust if mode == "adjust" else None,
                       adaptive_threshold=threshold, progress=False)
    extra = res.info.get("batch_extra", [{}] * len(res.nfe))
    row = {"method": label, "tokens_per_pass": k, "mode": mode, "seed": seed,
           "full_passes": float(np.mean(res.nfe)),
           "sampler_passes": float(np.mean([e.get("sampler_passes", 0) for e in extra])),
           "seconds_per_sample": sum(res.seconds) / args.num, **exact_score(res.tokens).row(ADJUST_FIELDS)}
    texts = [loaded.tokenizer.decode(r) for r in res.tokens.tolist()]
    print(f"{label:22s} K={k}  NLL {row['nll']:.4f}  GenPPL {row['gen_ppl']:.3f}  H {row['entropy']:.3f}  "
          f"full {row['full_passes']:.1f}  sampler {row['sampler_passes']:.1f}  "
          f"{row['seconds_per_sample'] * 1000:.1f} ms/sample", flush=True)
    return row, texts


def cached_rows(path: str | None, key: dict):
    """The base-only rows (sequential and marginal: they do not depend on the ADJUST sampler) of an earlier run
    with the same `key` (base weights' fingerprint, sample count, batch size, Ks), or {} when there are none. The
    rows are seeded, so reusing them for another sampler trained on the same base changes no number."""
    if path is None or not Path(path).is_file():
        return {}
    import json

    try:
        saved = json.loads(Path(path).read_text())
        rows = {tuple(k): v for k, v in saved["rows"]}
    except (ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"--base-rows {path}: not a rows cache this script wrote ({err!r}); delete it or name "
                         "another file") from None
    return rows if saved.get("key") == key else {}


def table(rows, seq) -> str:
    lines = ["| sampler | K | MAUVE vs sequential | exact Gen PPL | NLL/token (± s.e.) | slips / sample | "
             "entropy | full passes | sampler passes | ms / sample | speed-up vs sequential | NLL gap closed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        closed = f"{r['gap_closed']:.0%}" if r.get("gap_closed") is not None else ""
        lines.append(f"| {r['method']} | {r['tokens_per_pass']} | {r['mauve']:.3f} | {r['gen_ppl']:.3f} | "
                     f"{r['nll']:.4f} ± {r['nll_se']:.4f} | {r['slips_per_sample']:.2f} | "
                     f"{r['entropy']:.3f} | {r['full_passes']:.1f} | "
                     f"{r['sampler_passes']:.1f} | {r['seconds_per_sample'] * 1000:.2f} | "
                     f"{seq['seconds_per_sample'] / r['seconds_per_sample']:.2f}x | {closed} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True)
    p.add_argument("--adjust", required=True, help="ADJUST run / checkpoint trained on --base")
    p.add_argument("--ks", type=positive_int, nargs="+", default=[2, 4, 8])
    p.add_argument("--num", type=positive_int, default=128)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--threshold", type=float, default=None, help="also: ADJUST with adaptive K at the largest K")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--out", default="results/adjust")
    p.add_argument("--base-rows", default=None,
                   help="JSON file caching the sequential and marginal rows (with their texts, for MAUVE): read when "
                        "it holds rows of the same base weights, sample count, batch size and Ks, else written; lets "
                        "several ADJUST samplers trained on one base share those rows")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from paradistill.eval.mauve import featurize, mauve_score

    loaded = load_run(args.base, "--base")
    warm_up(loaded, args.adjust, "--adjust")
    started = time.perf_counter()
    from paradistill.distill.adjust_adapters import weights_fingerprint

    key = {"base": weights_fingerprint(loaded.model), "num": args.num, "batch_size": args.batch_size, "ks": args.ks}
    cache = cached_rows(args.base_rows, key)

    def base_row(label, k, seed):
        if (label, k, seed) not in cache:
            cache[(label, k, seed)] = run_row(loaded, label, k, "marginal", args, seed=seed)
        else:
            print(f"{label:22s} K={k}  reused from {args.base_rows}", flush=True)
        return cache[(label, k, seed)]

    # the MAUVE reference set (seed 0) is independent of every evaluated set (seed 1, common random numbers)
    results = [base_row("sequential (MAUVE reference)", 1, 0), base_row("sequential", 1, 1)]
    for k in args.ks:
        results += [base_row("marginal", k, 1), run_row(loaded, "ADJUST", k, "adjust", args, seed=1)]
    if args.base_rows:
        write_json(Path(args.base_rows), {"key": key, "rows": [[list(k), v] for k, v in cache.items()]})
    if args.threshold is not None:
        results.append(run_row(loaded, f"ADJUST adaptive (H<={args.threshold:g})", max(args.ks), "adjust", args,
                               seed=1, threshold=args.threshold))
        results[-1][0]["adaptive_threshold"] = args.threshold
    ref = featurize(results[0][1], "minilm")
    seq = results[1][0]
    for row, texts in results:
        m = mauve_score(p_features=featurize(texts, "minilm"), q_features=ref, features="minilm")
        row["mauve"], row["mauve_buckets"] = m["mauve"], m["num_buckets"]
    rows = [r for r, _ in results]
    for r in rows:
        if r["method"].startswith("ADJUST"):
            marg = next(m for m in rows if m["method"] == "marginal" and m["tokens_per_pass"] == r["tokens_per_pass"])
            gap = marg["nll"] - seq["nll"]
            r["gap_closed"] = (marg["nll"] - r["nll"]) / gap if gap > 0 else None
    out = Path(args.out)
    meta = {"base": str(loaded.path), "adjust": args.adjust, "num": args.num, "batch_size": args.batch_size,
            "threads": args.threads, "ks": args.ks, "mauve_features": "minilm (paradistill.eval.mauve)",
            "reference": "sequential samples, seed 0 (its own MAUVE row is 1 by construction); all other rows use "
                         "seed 1; the sequential seed-1 row is MAUVE's ceiling at this sample size",
            "seconds_total": time.perf_counter() - started, "base_rows": args.base_rows}
    write_json(out / "results.json", {"meta": meta, "rows": rows})
    write_text(out / "table.md", table(rows, seq))
    print(table(rows, seq))


if __name__ == "__main__":
    main()
