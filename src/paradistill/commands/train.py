"""`paradistill train {ar,mdlm,bd3lm}`."""

from __future__ import annotations

from .common import add_recipe_options, add_scale_options, scale_overrides


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train an AR, MDLM or BD3-LM model",
                       description="Train a base model with a recipe. Checkpoints go to OUT/checkpoints, "
                                   "metrics to OUT/metrics.jsonl; --resume continues exactly where it stopped.")
    p.add_argument("kind", choices=["ar", "mdlm", "bd3lm"], help="model kind")
    add_recipe_options(p)
    p.add_argument("--out", default=None, help="run directory (default: runs/<kind>)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/latest.json")
    p.add_argument("--init", default=None, help="start from this checkpoint's weights (e.g. BD3-LM from MDLM)")
    p.add_argument("--init-from-ar", default=None, metavar="RUN_OR_ID",
                   help="start an mdlm/bd3lm from an AR model's weights (AR -> diffusion adaptation): a paradistill AR "
                        "run or checkpoint, builtin:ar, or an id a registered converter handles; the recipe's adapt.* "
                        "options set attention annealing (adapt.anneal_steps=N) and the output shift (adapt.shift=true)")
    p.add_argument("--block-size", type=int, default=None, help="BD3-LM block size (overrides bd3lm.block_size)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the recipe and print the plan (parameters, tokens/step, memory, time) without training")
    add_scale_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from .. import api

    overrides = list(args.overrides) + scale_overrides(args)
    if args.block_size is not None:
        overrides.append(f"bd3lm.block_size={args.block_size}")
    recipe = api.load_recipe(args.recipe, overrides)
    if args.dry_run:
        from ..plan import print_plan

        print_plan(args.kind, recipe)
        return 0
    out = args.out or f"runs/{args.kind}"
    from ..rundir import check_train_target

    check_train_target(out, args.resume, kind=args.kind, recipe=recipe.name, model=recipe.model)  # no silent mixing with an existing run, no --resume into nothing
    result = api.train_model(args.kind, recipe, out, resume=args.resume, init=args.init,
                             init_from_ar=args.init_from_ar)
    from ..kinds import get_kind
    from ..train.distributed import is_rank_zero

    if not is_rank_zero():  # other ranks of a multi-device run stay quiet
        return 0
    val = f", validation {'NLL' if get_kind(args.kind).autoregressive else 'NELBO'} {result.last_val:.4f}/token" if result.last_val else ""
    print(f"trained {args.kind} for {result.steps} steps in {result.seconds:.0f}s{val}; checkpoint: {result.checkpoint}")
    return 0
