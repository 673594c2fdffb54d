"""Wall-clock per sample of sequential (K = 1), marginal and ADJUST sampling, measured in interleaved repetitions
(the median of each) so that load from other processes on a shared machine hits every method alike.

    python scripts/adjust_timing.py --base runs/base/mdlm --adjust runs/adjust/mdlm --ks 4 8 --reps 3 \
        --out results/adjust/timing.json
    (repeat --adjust LABEL=RUN to time several samplers in the same interleaved repetitions)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True)
    p.add_argument("--adjust", required=True, action="append", metavar="[LABEL=]RUN",
                   help="an ADJUST sampler run; repeat to time several samplers side by side (rows 'LABEL K=k')")
    p.add_argument("--ks", type=int, nargs="+", default=[4, 8])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="results/adjust/timing.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from paradistill import api

    loaded = api.load(args.base)
    samplers = [a.split("=", 1) if "=" in a else ("adjust", a) for a in args.adjust]
    configs = [("sequential", 1, "marginal", None)] + [
        c for k in args.ks for c in [("marginal", k, "marginal", None)] + [(n, k, "adjust", r) for n, r in samplers]]
    for _, run in samplers:  # warm-up
        api.generate(loaded, 2, sampler="adjust", tokens_per_pass=2, mode="adjust", adjust_checkpoint=run,
                     batch_size=2, progress=False)
    times: dict[str, list[float]] = {f"{m} K={k}": [] for m, k, _, _ in configs}
    for rep in range(args.reps):
        for name, k, mode, run in configs:
            start = time.perf_counter()
            api.generate(loaded, args.batch_size, sampler="adjust", tokens_per_pass=k, mode=mode,
                         batch_size=args.batch_size, seed=rep, progress=False, adjust_checkpoint=run)
            times[f"{name} K={k}"].append((time.perf_counter() - start) / args.batch_size)
            print(f"rep {rep} {name} K={k}: {times[f'{name} K={k}'][-1] * 1000:.1f} ms/sample", flush=True)
    seq = statistics.median(times["sequential K=1"])
    rows = {n: {"ms_per_sample_median": statistics.median(t) * 1000, "ms_per_sample_all": [x * 1000 for x in t],
                "speedup_vs_sequential": seq / statistics.median(t)} for n, t in times.items()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"batch_size": args.batch_size, "reps": args.reps, "threads": args.threads,
                                          "rows": rows}, indent=2))
    for n, r in rows.items():
        print(f"{n:16s} {r['ms_per_sample_median']:8.1f} ms/sample  {r['speedup_vs_sequential']:.2f}x")


if __name__ == "__main__":
    main()
