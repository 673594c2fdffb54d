"""The sampler's work outside the forward pass at the GPT-2 vocabulary (issue 27's target: <= 10% of the forward
at V = 50258), without the rest of the benchmark: `paradistill.eval.bench_extra.sampler_overhead` on a
randomly initialised model of the `tiny-gpt2vocab` size (L = 256, batch 1, half the positions masked), the forward
and every sampler step timed in interleaved rounds, paired per round.

    python -m experiments.bench.sampler_overhead --rounds 3 --out results/bench/overhead_v50258.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from paradistill.commands.bench import SIZES
from paradistill.eval.bench_cases import load_average
from paradistill.eval.bench_extra import sampler_overhead
from paradistill.io import atomic_write_json
from paradistill.models.transformer import ModelConfig
from experiments.common.cli import positive_int


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(SIZES), default="tiny-gpt2vocab", help="model size (default: V=50258)")
    ap.add_argument("--length", type=positive_int, default=256)
    ap.add_argument("--rounds", type=positive_int, default=3, help="interleaved timing rounds")
    ap.add_argument("--threads", type=positive_int, default=1)
    ap.add_argument("--out", default="results/bench/overhead_v50258.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = ModelConfig(**SIZES[args.size], max_len=2 * args.length)
    start, t0 = load_average(), time.perf_counter()
    result = sampler_overhead(cfg, args.length, 1, args.rounds)
    result.update(size=args.size, threads=args.threads, wall_s=time.perf_counter() - t0,
                  load_average={"start": start, "end": load_average()})
    atomic_write_json(args.out, result, indent=2)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
