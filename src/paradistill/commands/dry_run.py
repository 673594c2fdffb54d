"""`--dry-run` options shared by the distillation commands (the plan itself is paradistill/plan.py)."""

from __future__ import annotations


def add_dry_run_options(p) -> None:
    p.add_argument("--dry-run", action="store_true",
                   help="validate the recipe and print the plan (parameters, tokens/step, memory, time per step) "
                        "without loading the teacher or any data")
    p.add_argument("--assume-tflops", type=float, default=None,
                   help="--dry-run: time the plan at this sustained TFLOP/s (e.g. 400 for an H100 in bf16 at ~40%% "
                        "of peak) instead of measuring this machine")
    p.add_argument("--device-name", default=None, help="--dry-run: name of the device --assume-tflops describes")


def run_dry(kind: str, recipe, args) -> int:
    from ..plan import print_plan

    plan = print_plan(kind, recipe, assume_tflops=args.assume_tflops, device_name=args.device_name)
    model = recipe.model
    if model.get("adaln"):  # a DiT-layout recipe: compare with the published architecture's count
        from ..loading.dit import dit_parameter_count

        published = dit_parameter_count(plan.vocab_size, model["dim"], model["n_layers"], model.get("cond_dim", 128),
                                        model.get("mlp_ratio", 4.0), gumbel=kind.startswith("gumbel"))
        print(f"  published    {published:,} parameters in the published DiT layout (REFERENCE-MODELS §1"
              f"{', + the GD noise projection' if kind.startswith('gumbel') else ''}); this plan "
              f"{(plan.parameters - published) / published:+.3%}")
    return 0
