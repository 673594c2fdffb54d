r"""Wall-clock per sample of sequential (K = 1), marginal and ADJUST sampling, measured in interleaved repetitions
(the median of each) so that load from other processes on a shared machine hits every method alike.

    python -m experiments.adjust.speed --base runs/base/mdlm --adjust runs/adjust/mdlm --ks 4 8 --reps 3 \
        --out results/adjust/timing.json
    (repeat --adjust LABEL=RUN to time several samplers in the same interleaved repetitions)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from experiments.adjust.sampler_quality import warm_up
from experiments.common.models import load_run, model_args
from experiments.common.output import write_json
from experiments.common.cli import positive_int


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True)
    p.add_argument("--adjust", required=True, action="append", metavar="[LABEL=]RUN",
                   help="an ADJUST sampler run; repeat to time several samplers side by side (rows 'LABEL K=k')")
    p.add_argument("--ks", type=positive_int, nargs="+", default=[4, 8])
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--reps", type=positive_int, default=3)
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--out", default="results/adjust/timing.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from paradistill import api

    loaded = load_run(args.base, "--base")
    samplers = [model_args([a], "--adjust")[0] if "=" in a else ("adjust", a) for a in args.adjust]
    configs = [("sequential", 1, "marginal", None)] + [
        c for k in args.ks for c in [("marginal", k, "marginal", None)] + [(n, k, "adjust", r) for n, r in samplers]]
    for label, run in samplers:
        warm_up(loaded, run, f"--adjust {label}=")
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
    write_json(args.out, {"batch_size": args.batch_size, "reps": args.reps, "threads": args.threads, "rows": rows})
    for n, r in rows.items():
        print(f"{n:16s} {r['ms_per_sample_median']:8.1f} ms/sample  {r['speedup_vs_sequential']:.2f}x")


if __name__ == "__main__":
    main()
