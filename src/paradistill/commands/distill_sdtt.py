"""`paradistill distill sdtt`: Self-Distillation Through Time (halve the sampling steps, round after round)."""

from __future__ import annotations

import argparse

from .common import add_recipe_options, add_scale_options, scale_overrides
from .dry_run import add_dry_run_options, run_dry

DESCRIPTION = """\
Self-Distillation Through Time (Deschenaux & Gulcehre, ICLR 2025). Round r distils a teacher that samples
with m ancestral steps into a student that needs m/2: the frozen teacher takes two steps of size dt = 1/m
from x_t, the student matches it in ONE pass on every masked position. The student then becomes the teacher
and dt doubles, from --from-steps down to --to-steps. Each round is a resumable training run in
OUT/round_<r>_<m/2>steps/ (sample it with `paradistill sample OUT/round_2_16steps --steps 16`);
OUT/latest.json names the last student. Works for MDLM and BD3-LM teachers (BD3-LM: steps per block) and
Gumbel-distilled students (gd-mdlm, gd-bd3lm: teacher and student see the same noise). Settings come from
the recipe's `sdtt:` section, then these flags, e.g. sdtt.lr=1e-4 sdtt.ema=0.999 sdtt.warmup_steps=20
sdtt.reset_optimizer=false sdtt.t_sampling=grid sdtt.noise_temperature=0.85 train.batch_size=64."""


def add_parser(msub) -> None:
    p = msub.add_parser("sdtt", help="SDTT: distil an m-step sampler into an m/2-step one, repeatedly",
                        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default=None,
                   help="teacher (default: the recipe's `teacher`): run / checkpoint directory or published model (kind mdlm, bd3lm, gd-mdlm or "
                        "gd-bd3lm), e.g. runs/base/mdlm or hf:kuleshov-group/mdlm-owt")
    p.add_argument("--from-steps", type=int, default=None,
                   help="sampling steps of the teacher: round 1 uses dt = 1/FROM_STEPS (default: sdtt.from_steps, 64)")
    p.add_argument("--to-steps", type=int, default=None,
                   help="sampling steps of the final student; FROM/TO must be a power of two (default: sdtt.to_steps, 8)")
    p.add_argument("--divergence", choices=["reverse_kl", "forward_kl", "mse", "tv"], default=None,
                   help="student-vs-teacher divergence on masked positions: reverse_kl = KL(student||teacher) "
                        "(default), forward_kl, mse (on log-probs), tv (1/2 sum |p-q| on probabilities)")
    p.add_argument("--steps-per-round", type=int, default=None,
                   help="optimizer steps per round (default: sdtt.steps_per_round, 200)")
    p.add_argument("--protocol", choices=["paradistill", "official"], default=None,
                   help="round protocol: paradistill (default: each round's teacher is the previous student's EMA "
                        "weights, fresh EMA and Adam per round) or official (the released SDTT code: the raw student "
                        "is the next teacher, Adam and EMA carried across rounds)")
    add_recipe_options(p)
    p.add_argument("--out", default="runs/sdtt", help="output directory for all rounds (default: runs/sdtt)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in OUT: finished rounds are skipped, the unfinished one "
                        "resumes from its last checkpoint exactly")
    add_scale_options(p)
    add_dry_run_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from .. import api

    overrides = list(args.overrides) + scale_overrides(args)
    for flag, key in (("from_steps", "from_steps"), ("to_steps", "to_steps"), ("divergence", "divergence"),
                      ("steps_per_round", "steps_per_round"), ("protocol", "protocol")):
        if getattr(args, flag) is not None:
            overrides.append(f"sdtt.{key}={getattr(args, flag)}")
    recipe = api.load_recipe(args.recipe, overrides)
    if args.dry_run:
        return run_dry("sdtt", recipe, args)
    teacher = args.teacher or recipe.teacher
    if not teacher:
        from ..errors import UserError

        raise UserError(f"no teacher: pass --teacher (e.g. hf:kuleshov-group/mdlm-owt) or use a recipe with "
                        f"`teacher:` (recipe '{recipe.name}' has none)")
    from ..rundir import check_not_input, check_train_target

    check_not_input(args.out, {"--teacher": teacher})
    check_train_target(args.out, args.resume)
    results = api.distill_sdtt(teacher, recipe, args.out, resume=args.resume)
    for r in results:
        state = "already done" if r.skipped else ("done" if r.final else "stopped early (re-run with --resume)")
        val = f", val {recipe.sdtt.divergence} {r.last_val:.4f}" if r.last_val is not None else ""
        print(f"round {r.round}: {r.teacher_steps} -> {r.student_steps} steps, {state}{val}; {r.checkpoint}")
    return 0
