"""`paradistill bench`: speed of every generation method side by side."""

from __future__ import annotations


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [v.strip() for v in text.split(",") if v.strip()]


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="speed benchmark of every method, side by side",
                       description="Builds same-size models for each method (random weights: speed does not depend "
                                   "on them) and measures latency, tokens/s, NFE and peak memory. Cases of one "
                                   "(length, batch) are warmed up, then run interleaved (A B C ... A B C ...) for "
                                   "--rounds rounds; ratios are paired per round (median, min-max), each side at its "
                                   "best of eager / compiled. Also: the machine's peak matmul GFLOP/s and bandwidth "
                                   "(cache-resident too when the weights fit), the forward pass's achieved GFLOP/s, "
                                   "a roofline table, and optionally the sampler's work outside the forward. Writes "
                                   "JSON + markdown (opening with the verdict) + PNG.")
    p.add_argument("--model-size", choices=list(SIZES), default="tiny",
                   help="tiny: the CPU recipe (dim 192, 4 layers, V=360); tiny-gpt2vocab: the same with a GPT-2 "
                        "vocabulary (V=50258); small: dim 384, 6 layers; gpt2: dim 768, 12 layers, V=50258")
    p.add_argument("--lengths", type=_ints, default=[256], help="comma-separated sequence lengths (default: 256)")
    p.add_argument("--batch-sizes", type=_ints, default=[1, 8], help="comma-separated batch sizes (default: 1,8)")
    p.add_argument("--mdlm-steps", type=_ints, default=[8, 16, 32, 64, 0],
                   help="MDLM step counts; 0 means L (default: 8,16,32,64,0)")
    p.add_argument("--methods", default="ar,mdlm,bd3lm,gd,adjust",
                   help="comma-separated subset of ar, hf (transformers GPT-2 generate, same size), mdlm, blockcache "
                        "(MDLM, --block-size blocks, --block-steps confidence passes each, no cache / prefix / "
                        "dual cache), bd3lm, gd, adjust")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (every case once per round)")
    p.add_argument("--reps", type=int, default=None, help="deprecated alias of --rounds")
    p.add_argument("--block-size", type=int, default=32, help="blockcache cases: block size (default 32)")
    p.add_argument("--block-steps", type=int, default=4, help="blockcache cases: passes per block (default 4)")
    p.add_argument("--no-baselines", action="store_true",
                   help="skip the AR no-cache and MDLM no-cache cases (slow references)")
    p.add_argument("--heavy-tokens", type=int, default=0,
                   help="above this many tokens per call (batch x length) run only AR, HF, the fewest-step MDLM and "
                        "the dual-cache case (0: all cases everywhere)")
    p.add_argument("--heavy-cases", default=None,
                   help="comma-separated case names kept above --heavy-tokens, e.g. 'ar kv-cache,hf-gpt2 generate,mdlm "
                        "B=32 S=4 dual' (their compiled twins too; default: AR, HF, the fewest-step MDLM, dual cache)")
    p.add_argument("--compile-cases", default=None,
                   help="with --compile: comma-separated eager cases that get a compiled twin (default: 'ar kv-cache,"
                        "ar no-cache,mdlm T=16 cached,bd3lm B=16 kv-cache')")
    p.add_argument("--forward-tokens", type=int, default=4096,
                   help="tokens of the full forward pass timed against peak matmul (batch x 256; default 4096)")
    p.add_argument("--overhead-rounds", type=int, default=0,
                   help="also time the sampler's work outside the forward (L=256, batch 1), this many rounds")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs per case")
    p.add_argument("--compile", action="store_true",
                   help="also time the AR, MDLM T=16 and BD3-LM cached cases with the backbone under torch.compile "
                        "(rows marked '(compiled)', side by side with the eager ones; needs a C++ compiler on CPU)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                   help="where the models run and are timed: cpu (default), cuda (a GPU: every timed call is "
                        "synchronized, peak memory is the CUDA allocator's), or auto (cuda when torch sees a GPU)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="weights, activations and KV caches of every model, and the peak matmul's dtype (default "
                        "float32; bfloat16 is the usual choice on a GPU)")
    p.add_argument("--out", default="results/bench", help="output folder for bench.json, table.md, bench.png")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    p.set_defaults(run=run)


SIZES = {"tiny": dict(dim=192, n_layers=4, n_heads=4, vocab_size=360),
         "tiny-gpt2vocab": dict(dim=192, n_layers=4, n_heads=4, vocab_size=50258),
         "small": dict(dim=384, n_layers=6, n_heads=6, vocab_size=360),
         "gpt2": dict(dim=768, n_layers=12, n_heads=12, vocab_size=50258)}


def run(args) -> int:
    from ..eval.bench import BenchConfig
    from ..eval.bench_cases import run_benchmark

    rounds = args.reps if args.reps is not None else args.rounds
    if rounds < 1:
        from ..errors import UserError

        raise UserError(f"--rounds {rounds}: must be >= 1")
    bc = BenchConfig(**SIZES[args.model_size], lengths=args.lengths, batch_sizes=args.batch_sizes,
                     mdlm_steps=args.mdlm_steps, reps=rounds, rounds=rounds, warmup=args.warmup,
                     compile=args.compile, methods=[m.strip() for m in args.methods.split(",") if m.strip()],
                     block=args.block_size, block_steps=args.block_steps, ar_no_cache=not args.no_baselines,
                     mdlm_no_cache=not args.no_baselines, heavy_tokens=args.heavy_tokens,
                     overhead_rounds=args.overhead_rounds, heavy_cases=_names(args.heavy_cases),
                     compile_cases=_names(args.compile_cases), forward_tokens=args.forward_tokens,
                     device=args.device, dtype=args.dtype)
    bc.validate()
    from ..io import guard_output_dir

    guard_output_dir(args.out, ["bench.json", "table.md", "bench.png"], args.overwrite)
    results = run_benchmark(bc, args.out)
    from ..eval.bench_report import markdown_table

    print(markdown_table(results))
    print(f"wrote {args.out}/bench.json, table.md, bench.png")
    return 0
