"""Options shared by several commands."""

from __future__ import annotations

import argparse


def add_recipe_options(p: argparse.ArgumentParser, default_recipe: str = "tiny") -> None:
    p.add_argument("--recipe", default=default_recipe,
                   help=f"recipe name (see `paradistill recipes`) or YAML file (default: {default_recipe})")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="recipe overrides, e.g. train.max_steps=500 model.dim=256 data.seq_len=128")


def add_scale_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("devices (Lightning Fabric)")
    g.add_argument("--devices", type=int, default=None, help="devices per node (default: recipe, 1)")
    g.add_argument("--num-nodes", type=int, default=None, help="number of nodes (default: 1)")
    g.add_argument("--strategy", choices=["auto", "ddp", "fsdp"], default=None, help="distributed strategy")
    g.add_argument("--precision", choices=["auto", "32-true", "32", "bf16-mixed", "16-mixed"], default=None,
                   help="numeric precision (auto: fp32 on CPU, bf16-mixed on GPU)")
    g.add_argument("--accelerator", choices=["auto", "cpu", "gpu", "cuda", "mps"], default=None,
                   help="hardware to run on (default: auto)")


def scale_overrides(args) -> list[str]:
    out = []
    for flag, key in (("devices", "devices"), ("num_nodes", "num_nodes"), ("strategy", "strategy"),
                      ("precision", "precision"), ("accelerator", "accelerator")):
        value = getattr(args, flag, None)
        if value is not None:
            value = "32-true" if value == "32" else value
            out.append(f"train.{key}={value}")
    return out


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--sampler", default="ancestral",
                   help="ancestral | ancestral-nocache | first-hitting | confidence | entropy | margin | threshold | "
                        "factor | eb | low-confidence | random-remasking (LLaDA's remasking) | adjust (AR checkpoints "
                        "always decode left to right). threshold / factor / eb commit a variable number of tokens per "
                        "pass, set by --threshold")
    g.add_argument("--steps", type=int, default=64, help="denoising steps (per block for block samplers)")
    g.add_argument("--num", type=int, default=16, help="number of samples")
    g.add_argument("--batch-size", type=int, default=16, help="samples per batch")
    g.add_argument("--length", type=int, default=None, help="sequence length (default: the training length)")
    g.add_argument("--prompt", default=None, help="text the samples continue (kept fixed)")
    g.add_argument("--chat", default=None,
                   help="a user message put through the tokenizer's chat template (instruct models, e.g. "
                        "LLaDA-8B-Instruct / Dream-v0-Instruct-7B); the answer is generated after it")
    g.add_argument("--gen-length", type=int, default=None,
                   help="tokens to generate after the prompt / chat template (the length is then the template's "
                        "tokens + this; instead of --length)")
    g.add_argument("--infill", default=None,
                   help="template with [MASK] marking each position to generate, e.g. 'the [MASK] [MASK] ran .'")
    g.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (> 0)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass in (0, 1]")
    g.add_argument("--block-size", type=int, default=None, help="semi-autoregressive block decoding")
    g.add_argument("--tokens-per-step", type=int, default=None, help="confidence samplers: tokens per pass")
    g.add_argument("--final-fill", choices=["sample", "argmax"], default="sample",
                   help="how positions still masked after the last step are filled")
    g.add_argument("--seed", type=int, default=0, help="random seed")
    g.add_argument("--no-kv-cache", action="store_true", help="disable KV caches (for comparison)")
    g.add_argument("--compile", action="store_true",
                   help="AR checkpoints: decode into a static KV cache through torch.compile (C++ wrapper on CPU, needs "
                        "g++/clang). The first batch pays the compilation (~20-60 s on CPU); worth it for many "
                        "samples (see results/bench for the measured gain)")
    g.add_argument("--stop-at-eos", action="store_true", help="block samplers: stop once every sample has ended")
    g.add_argument("--tokens-per-pass", type=int, default=4, help="adjust sampler: tokens per full pass (K)")
    g.add_argument("--adjust-mode", choices=["adjust", "marginal"], default="adjust",
                   help="adjust sampler: use the trained sampler layer, or the marginal baseline")
    g.add_argument("--adjust-threshold", type=float, default=None,
                   help="adjust sampler: adaptive K, stop picking in a full pass once the next pick's entropy "
                        "exceeds this many nats (--tokens-per-pass is then the maximum)")
    g.add_argument("--threshold", type=float, default=None,
                   help="adaptive parallel decoding. --sampler threshold: commit every masked position (of the "
                        "current block) whose top probability is >= TAU (default 0.9; 1 = one token per pass, 0 = "
                        "all at once); factor: Fast-dLLM's factor rule, the k-th most confident position needs "
                        "p >= 1 - F/(k+1) (default 1); eb: entropy-bounded, the lowest-entropy positions whose "
                        "entropies beyond the largest sum to <= GAMMA nats (default 0.1); --sampler adjust: keep "
                        "picking in a full pass while the next pick's top probability is >= TAU (--tokens-per-pass "
                        "is then the maximum). At least one token per pass always")
    g.add_argument("--block-cache", choices=["prefix", "dual"], default=None,
                   help="MDLM / GD-MDLM with --block-size: approximate block-wise KV cache (Fast-dLLM). prefix: "
                        "keys/values of finished blocks are reused, refreshed by a full pass at each block's start; "
                        "dual: the masked suffix's too, each pass runs only the current block. BD3-LM always uses "
                        "its exact cache")
    g.add_argument("--alg-temp", type=float, default=None,
                   help="confidence / entropy / margin / low-confidence samplers: Dream's alg_temp. 0 (default): "
                        "unmask the most confident positions; > 0: draw them without replacement from "
                        "softmax(confidence / ALG_TEMP) over the masked positions")
    g.add_argument("--noise-temperature", type=float, default=None,
                   help="Gumbel-distilled students: noise temperature (default: the checkpoint's)")


def sampling_kwargs(args) -> dict:
    kw = dict(sampler=args.sampler, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
              prompt=args.prompt, infill=args.infill, temperature=args.temperature, top_p=args.top_p,
              block_size=args.block_size, tokens_per_step=args.tokens_per_step, final_fill=args.final_fill,
              kv_cache=not args.no_kv_cache, stop_at_eos=args.stop_at_eos)
    if getattr(args, "threshold", None) is not None:
        kw["threshold"] = args.threshold
    if getattr(args, "block_cache", None):
        kw["block_cache"] = args.block_cache
    for key in ("chat", "gen_length"):  # only when given: commands without them keep their signature
        if getattr(args, key, None) is not None:
            kw[key] = getattr(args, key)
    if args.sampler == "adjust":
        kw.update(tokens_per_pass=args.tokens_per_pass, mode=args.adjust_mode,
                  adaptive_threshold=getattr(args, "adjust_threshold", None))
    if getattr(args, "compile", False):
        kw["compile"] = True
    if args.noise_temperature is not None:
        kw["noise_temperature"] = args.noise_temperature
    if getattr(args, "alg_temp", None) is not None:
        kw["alg_temp"] = args.alg_temp
    return kw
