"""Benchmark BD3-LM block sampling with and without the KV cache of clean blocks.

    OMP_NUM_THREADS=1 .venv/bin/python -m experiments.bench.bd3lm_cache --threads 1

A model of the `tiny` recipe's size (random weights: speed does not depend on them) samples L=256 tokens in
blocks of B=16 with the ancestral sampler; both paths use the same generator and must give identical tokens.
Reports the median wall time over `--reps` runs after one warm-up run, forward FLOPs, and the speed ratio.
Writes results/bd3lm_cache/{bench.json, table.md, COMMAND.md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from paradistill.data.tokenizers import builtin_tokenizer
from paradistill.recipes import load_recipe, model_config
from paradistill.sampling.base import run_sampler
from paradistill.sampling.bd3lm import BD3Denoiser
from paradistill.sampling.blocks import BlockwiseSampler
from paradistill.sampling.registry import build_sampler

from experiments.common.output import write_command, write_text
from experiments.common.cli import positive_int

OUT = Path(__file__).resolve().parents[2] / "results" / "bd3lm_cache"


def run_once(model, tok, args, use_cache: bool):
    x = torch.full((args.batch, args.length), tok.mask_id)
    x[:, 0] = tok.bos_id
    fixed = torch.zeros_like(x, dtype=torch.bool)
    fixed[:, 0] = True
    den = BD3Denoiser(model, tok.mask_id, args.block, use_cache=use_cache, batch_size=args.batch, length=args.length)
    sampler = BlockwiseSampler(build_sampler(args.sampler), args.block)
    start = time.perf_counter()
    res = run_sampler(sampler, den, x, fixed, torch.Generator().manual_seed(args.seed), args.steps)
    return time.perf_counter() - start, res, den


def measure(model, tok, args, use_cache: bool) -> dict:
    run_once(model, tok, args, use_cache)  # warm-up
    times, res, den = [], None, None
    for _ in range(args.reps):
        sec, res, den = run_once(model, tok, args, use_cache)
        times.append(sec)
    return {"median_s": statistics.median(times), "times_s": times, "nfe": res.nfe, "forward_calls": den.forward_calls,
            "query_tokens": den.query_tokens, "flops": den.flops, "tokens": res.tokens}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--length", type=positive_int, default=256)
    p.add_argument("--block", type=int, default=16)
    p.add_argument("--steps", type=positive_int, default=16, help="denoising steps per block")
    p.add_argument("--batch", type=positive_int, default=4)
    p.add_argument("--reps", type=positive_int, default=3)
    p.add_argument("--sampler", default="ancestral")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    tok = builtin_tokenizer()
    recipe = load_recipe("tiny")
    torch.manual_seed(0)
    from paradistill.models.transformer import Transformer

    model = Transformer(model_config(recipe, tok.vocab_size, max_len=max(1024, args.length))).eval()
    cached = measure(model, tok, args, True)
    plain = measure(model, tok, args, False)
    identical = bool(torch.equal(cached.pop("tokens"), plain.pop("tokens")))
    speedup = plain["median_s"] / cached["median_s"]
    result = {"length": args.length, "block": args.block, "steps_per_block": args.steps, "batch": args.batch,
              "reps": args.reps, "sampler": args.sampler, "threads": args.threads,
              "model": {"dim": model.cfg.dim, "n_layers": model.cfg.n_layers, "vocab": model.cfg.vocab_size,
                        "params": model.num_parameters()},
              "cached": cached, "uncached": plain, "identical_samples": identical, "speedup": speedup,
              "flops_ratio": plain["flops"] / cached["flops"], "target_speedup": 2.0,
              "machine": {"platform": platform.platform(), "torch": torch.__version__, "python": sys.version.split()[0]}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "bench.json", json.dumps(result, indent=2) + "\n")
    rows = [("KV cache", cached), ("recompute prefix", plain)]
    verdict = (f"**Verdict: the block KV cache samples {speedup:.2f}x faster (target >= 2x) with "
               f"{result['flops_ratio']:.2f}x fewer FLOPs; identical samples: {identical}.**")
    table = [verdict, "", "| path | median s | forward calls | query tokens | GFLOPs |", "|---|---|---|---|---|"]
    table += [f"| {name} | {r['median_s']:.3f} | {r['forward_calls']} | {r['query_tokens']} | {r['flops'] / 1e9:.1f} |"
              for name, r in rows]
    table += ["", f"L={args.length}, B={args.block}, {args.steps} ancestral steps per block, batch {args.batch}, "
                  f"{args.threads} thread(s), median of {args.reps} after a warm-up. Speed ratio **{speedup:.2f}x** "
                  f"(target >= 2x), FLOPs ratio {result['flops_ratio']:.2f}x, identical samples: {identical}."]
    write_text(out / "table.md", "\n".join(table) + "\n")
    write_command(out, "experiments.bench.bd3lm_cache", argv or sys.argv[1:])
    print("\n".join(table))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
