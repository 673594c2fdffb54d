"""`paradistill distill gumbel`: Gumbel Distillation of an AR teacher into a noise-conditioned MDLM / BD3-LM."""

from __future__ import annotations

from .common import add_recipe_options, add_scale_options, scale_overrides
from .dry_run import add_dry_run_options, run_dry


def add_parser(msub) -> None:
    p = msub.add_parser(
        "gumbel", help="Gumbel Distillation: an AR teacher's noise -> text map into an MDLM / BD3-LM student",
        description="Train a masked-diffusion student conditioned on the Gumbel noise that makes the teacher "
                    "produce the training text (posterior extraction on real data, or offline teacher samples). "
                    "Options of the method live in the recipe's `gumbel:` section (gumbel.noise, gumbel.embed, "
                    "gumbel.topk, gumbel.extra_mode, gumbel.logit_skip, gumbel.noise_temperature, gumbel.extraction, ...). Sample "
                    "and evaluate the result with `paradistill sample` / `paradistill eval` "
                    "(--noise-temperature sets the noise temperature).")
    p.add_argument("--teacher", default=None,
                   help="builtin-generator (the built-in corpus's exact generator), an AR run directory, or "
                        "hf:DIR / hf:ORG/NAME (a Hugging Face causal LM; hub cache first); default: the recipe's "
                        "`teacher`")
    p.add_argument("--student", choices=["mdlm", "bd3lm"], default=None,
                   help="student model kind (default: the recipe's `student`, else mdlm)")
    add_recipe_options(p)
    p.add_argument("--init", default=None, help="start the student from this checkpoint's weights (any "
                   "reference, e.g. hf:kuleshov-group/bd3lm-owt-block_size4)")
    p.add_argument("--out", default=None, help="run directory (default: runs/gd-<student>)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/latest.json")
    p.add_argument("--noise", choices=["gumbel", "gaussian", "uniform", "none"], default=None,
                   help="noise type (ablations; overrides gumbel.noise)")
    p.add_argument("--embed", choices=["dense", "topk", "tied", "linear"], default=None,
                   help="noise embedding (overrides gumbel.embed)")
    p.add_argument("--logit-skip", action="store_true",
                   help="also add the noise to the student's logits through a learned gate (gumbel.logit_skip=true): "
                        "the teacher's sample is argmax(logits + noise), so the student can use the noise directly "
                        "instead of only through its input embedding; not in the paper (see results/gumbel_distillation)")
    p.add_argument("--offline", action="store_true", help="offline extraction: teacher samples from stored seeds")
    p.add_argument("--block-size", type=int, default=None, help="BD3-LM block size (overrides bd3lm.block_size)")
    add_scale_options(p)
    add_dry_run_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from .. import api

    overrides = list(args.overrides) + scale_overrides(args)
    if args.noise:
        overrides.append(f"gumbel.noise={args.noise}")
    if args.embed:
        overrides.append(f"gumbel.embed={args.embed}")
    if args.logit_skip:
        overrides.append("gumbel.logit_skip=true")
    if args.offline:
        overrides.append("gumbel.extraction=offline")
    if args.block_size is not None:
        overrides.append(f"bd3lm.block_size={args.block_size}")
    recipe = api.load_recipe(args.recipe, overrides)
    student = args.student or recipe.student or "mdlm"
    if args.dry_run:
        return run_dry("gumbel" if student == "mdlm" else "gumbel-bd3lm", recipe, args)
    teacher, init = args.teacher or recipe.teacher, args.init or recipe.init
    if not teacher:
        from ..errors import UserError

        raise UserError(f"no teacher: pass --teacher (e.g. hf:openai-community/gpt2) or use a recipe with `teacher:` "
                        f"(recipe '{recipe.name}' has none)")
    out = args.out or f"runs/gd-{student}"
    from ..rundir import check_not_input, check_train_target

    check_not_input(out, {"--teacher": teacher, "--init": init})
    check_train_target(out, args.resume, kind=f"gd-{student}", recipe=recipe.name)
    result = api.distill_gumbel(teacher, student, recipe, out, init=init, resume=args.resume)
    val = f", noise-conditioned validation NELBO {result.last_val:.4f}/token" if result.last_val else ""
    print(f"distilled gd-{student} for {result.steps} steps in {result.seconds:.0f}s{val}; "
          f"checkpoint: {result.checkpoint}")
    return 0
