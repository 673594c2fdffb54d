"""`paradistill bench`: speed of every generation method side by side."""

from __future__ import annotations


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="speed benchmark of every method, side by side",
                       description="Builds same-size models for each method (random weights: speed does not depend "
                                   "on them) and measures latency, tokens/s, NFE and peak memory with warm-up and "
                                   "repetitions (median), the machine's peak matmul GFLOP/s and bandwidth, the "
                                   "forward pass's achieved GFLOP/s, and a roofline table. Writes JSON + markdown + PNG.")
    p.add_argument("--model-size", choices=["tiny", "small", "gpt2"], default="tiny",
                   help="tiny: the CPU recipe (dim 192, 4 layers, V=360); small: dim 384, 6 layers; "
                        "gpt2: dim 768, 12 layers, V=50258")
    p.add_argument("--lengths", type=_ints, default=[256], help="comma-separated sequence lengths (default: 256)")
    p.add_argument("--batch-sizes", type=_ints, default=[1, 8], help="comma-separated batch sizes (default: 1,8)")
    p.add_argument("--mdlm-steps", type=_ints, default=[8, 16, 32, 64, 0],
                   help="MDLM step counts; 0 means L (default: 8,16,32,64,0)")
    p.add_argument("--methods", default="ar,mdlm,bd3lm,gd,adjust", help="comma-separated subset of methods")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions per case (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs per case")
    p.add_argument("--compile", action="store_true",
                   help="also time the AR, MDLM T=16 and BD3-LM cached cases with the backbone under torch.compile "
                        "(rows marked '(compiled)', side by side with the eager ones; needs a C++ compiler on CPU)")
    p.add_argument("--out", default="results/bench", help="output folder for bench.json, table.md, bench.png")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    p.set_defaults(run=run)


SIZES = {"tiny": dict(dim=192, n_layers=4, n_heads=4, vocab_size=360),
         "small": dict(dim=384, n_layers=6, n_heads=6, vocab_size=360),
         "gpt2": dict(dim=768, n_layers=12, n_heads=12, vocab_size=50258)}


def run(args) -> int:
    from ..eval.bench import BenchConfig
    from ..eval.bench_cases import run_benchmark

    bc = BenchConfig(**SIZES[args.model_size], lengths=args.lengths, batch_sizes=args.batch_sizes,
                     mdlm_steps=args.mdlm_steps, reps=args.reps, warmup=args.warmup, compile=args.compile,
                     methods=[m.strip() for m in args.methods.split(",") if m.strip()])
    bc.validate()
    from ..io import guard_output_dir

    guard_output_dir(args.out, ["bench.json", "table.md", "bench.png"], args.overwrite)
    results = run_benchmark(bc, args.out)
    from ..eval.bench_report import markdown_table

    print(markdown_table(results))
    print(f"wrote {args.out}/bench.json, table.md, bench.png")
    return 0
