"""`paradistill distill adjust --base CKPT`: record one-token-per-pass trajectories of a frozen MDLM / BD3-LM and
train an ADJUST sampler layer on them."""

from __future__ import annotations

import argparse

from .common import add_recipe_options, add_scale_options, scale_overrides

DESCRIPTION = """\
ADJUST joint sampler (Bansal & Sanghavi 2025). Two stages, both resumable:
  1. trajectories: the frozen base unmasks one token per full forward pass (lowest-entropy position, sampled
     from its marginal); each trajectory is stored as final tokens + unmasking order in shards under
     OUT/trajectories (or --trajectories-dir), tagged with the base model's fingerprint.
  2. training: a sampler layer (down-projection of [token embedding ; previous hidden state], one bidirectional
     block, residual, the base's frozen output head) learns, by teacher-forced unrolls of k <= --max-unroll
     recorded tokens, to match a fresh full pass (forward KL over still-masked positions). Only the sampler trains.
Then sample with:  paradistill sample OUT --sampler adjust --tokens-per-pass 4
              or:  paradistill sample BASE --sampler adjust --adjust OUT --tokens-per-pass 4
Recipe keys (section `adjust:`, override as adjust.KEY=VALUE): trajectories, traj_batch_size, shard_size,
traj_seed, traj_temperature, max_unroll, unroll_p (geometric law of k), loss_at (all|last), shared_k (one k per
batch), cache_hidden (store the full passes' hidden states with the trajectories so training needs no full pass;
float16, trajectories x L x L x H), cache_max_gb, init_from_base (sampler block starts as the base's first block),
dim (sampler width, 0 = base hidden size), n_heads, mlp_ratio, init_gain (0: an untrained sampler is the marginal
baseline), steps, batch_size, lr, warmup_steps, ema, eval_batches, val_fraction, tokens_per_pass (default K of
the checkpoint). Other train.* keys (seed, devices, checkpoint_every...) apply.
"""


def add_parser(msub) -> None:
    p = msub.add_parser("adjust", help="train an ADJUST sampler layer on a frozen masked-diffusion base",
                        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="frozen base: an MDLM / BD3-LM / llada / dream checkpoint reference "
                   "(run directory, a published LLaDA / Dream directory, hf:ORG/NAME[@REV], ...)")
    p.add_argument("--trajectories", type=int, default=None, metavar="N",
                   help="number of trajectories to record (default: recipe adjust.trajectories, 512)")
    p.add_argument("--trajectories-dir", default=None,
                   help="where trajectories are stored / resumed (default: OUT/trajectories); refused if they "
                        "were recorded with another base")
    p.add_argument("--max-unroll", type=int, default=None, metavar="K",
                   help="longest teacher-forced unroll in sampler passes (default: recipe adjust.max_unroll, 7)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: recipe adjust.steps, 800)")
    p.add_argument("--prompts", default=None,
                   help="optional text file, one prompt per line: trajectories continue these (cycled); "
                        "default: unconditional (BOS only)")
    p.add_argument("--chat", action="store_true",
                   help="each --prompts line is a user message put through the base tokenizer's chat template "
                        "(instruct models, e.g. Dream-v0-Instruct-7B, as the official MetaMath trajectories)")
    p.add_argument("--gen-length", type=int, default=None, metavar="N",
                   help="trajectory length = the longest prompt template + N generated tokens (default: the "
                        "base's training length, else data.seq_len)")
    add_recipe_options(p)
    p.add_argument("--out", default="runs/adjust", help="run directory (default: runs/adjust)")
    p.add_argument("--resume", action="store_true",
                   help="continue training from OUT/latest.json (trajectory shards always resume)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (trajectory and training time, memory, sampler size) on --plan-device; "
                        "for LLaDA / Dream bases (a directory or a release name such as "
                        "hf:Dream-org/Dream-v0-Base-7B), nothing is loaded")
    p.add_argument("--plan-device", default="h100", help="--dry-run: device of the estimate (h100, h200, a100)")
    add_scale_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from .. import api

    overrides = list(args.overrides) + scale_overrides(args)
    for flag, key in ((args.trajectories, "trajectories"), (args.max_unroll, "max_unroll"), (args.steps, "steps")):
        if flag is not None:
            overrides.append(f"adjust.{key}={flag}")
    recipe = api.load_recipe(args.recipe, overrides)
    if args.dry_run:
        from ..methods.dlm_plans import format_plan, plan_adjust

        plan = plan_adjust(args.base, recipe, args.plan_device)
        print(f"plan: ADJUST (recipe {recipe.name}) on {plan['base']}\n{format_plan(plan)}")
        return 0
    from ..rundir import check_not_input, check_train_target

    check_not_input(args.out, {"--base": args.base})
    check_train_target(args.out, args.resume)
    result = api.distill_adjust(args.base, recipe, args.out, args.prompts, args.trajectories_dir, resume=args.resume,
                                progress=not args.no_progress, chat=args.chat, gen_length=args.gen_length)
    val = f", validation KL {result.last_val:.4f} nats/position" if result.last_val is not None else ""
    print(f"trained an ADJUST sampler for {result.steps} steps in {result.seconds:.0f}s{val}; checkpoint: "
          f"{result.checkpoint}\nsample: paradistill sample {args.out} --sampler adjust --tokens-per-pass "
          f"{recipe.adjust.tokens_per_pass}")
    return 0
