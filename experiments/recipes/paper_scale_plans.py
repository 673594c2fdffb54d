"""What would the paper-scale recipes need? Dry-run plans (sdtt-owt, gd-owt-mdlm, gd-owt-bd3lm) -> results/recipes/.

    python -m experiments.recipes.paper_scale_plans --assume-tflops 400 --device-name "..." [--devices 1 8]

Writes, per recipe and device count, the CLI's dry-run text (`<recipe>-<n>gpu.txt`), plans.json and table.md
(atomically). The parameter counts are exact; memory and time are the planner's estimates (paradistill/plan.py).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

from paradistill import api
from paradistill.commands.dry_run import run_dry
from paradistill.io import atomic_write_text
from paradistill.loading.dit import dit_parameter_count
from paradistill.plan import make_plan
from experiments.common.cli import positive_int

RECIPES = {"sdtt-owt": ("sdtt", "distill sdtt"), "gd-owt-mdlm": ("gumbel", "distill gumbel"),
           "gd-owt-bd3lm": ("gumbel-bd3lm", "distill gumbel")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--assume-tflops", type=float, required=True, help="sustained TFLOP/s of the stated device")
    ap.add_argument("--device-name", required=True, help="the stated device")
    ap.add_argument("--devices", type=positive_int, nargs="+", default=[1, 8], help="device counts to plan for")
    ap.add_argument("--out", default="results/recipes")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (kind, command) in RECIPES.items():
        for n in args.devices:
            recipe = api.load_recipe(name, [f"train.devices={n}"] if n > 1 else [])
            text = io.StringIO()
            with contextlib.redirect_stdout(text):
                run_dry(kind, recipe, argparse.Namespace(assume_tflops=args.assume_tflops,
                                                         device_name=args.device_name))
            header = f"$ paradistill {command} --recipe {name}{f' train.devices={n}' if n > 1 else ''} --dry-run " \
                     f"--assume-tflops {args.assume_tflops:g} --device-name '{args.device_name}'\n"
            atomic_write_text(out / f"{name}-{n}gpu.txt", header + text.getvalue())
            plan = make_plan(kind, recipe, assume_tflops=args.assume_tflops, device_name=args.device_name)
            published = dit_parameter_count(plan.vocab_size, 768, 12, 128, gumbel=kind.startswith("gumbel"))
            rows.append({"recipe": name, "devices": n, "parameters": plan.parameters, "published": published,
                         "relative": (plan.parameters - published) / published, "tokens_per_step": plan.tokens_per_step,
                         "memory_gib_per_device": sum(plan.memory_bytes.values()) / 2**30,
                         "memory_parts_gib": {k: v / 2**30 for k, v in plan.memory_bytes.items()},
                         "seconds_per_step": plan.seconds_per_1k / 1000, "max_steps": recipe.train.max_steps,
                         "total_hours": plan.seconds_per_1k * recipe.train.max_steps / 1000 / 3600,
                         "micro_batch": plan.micro_batch, "grad_accum": plan.grad_accum})
    atomic_write_text(out / "plans.json", json.dumps({"device": args.device_name, "assumed_tflops": args.assume_tflops,
                                                      "plans": rows}, indent=2))
    worst = max(abs(r["relative"]) for r in rows)
    lines = [f"**Verdict:** all three recipes plan the published architectures within {worst:.2%} of their parameter "
             f"counts (DiT small 169.6M; GD students + the 768 x 50257 noise projection); time per step is for "
             f"{args.device_name} at an ASSUMED {args.assume_tflops:g} TFLOP/s (no GPU was available to measure).",
             "", "| recipe | devices | parameters | published | diff | tokens/step | memory/device | s/step | "
             "total (max_steps) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['recipe']} | {r['devices']} | {r['parameters'] / 1e6:.2f}M | {r['published'] / 1e6:.2f}M | "
                     f"{r['relative']:+.3%} | {r['tokens_per_step']:,} | {r['memory_gib_per_device']:.1f} GiB | "
                     f"{r['seconds_per_step']:.3f} | {r['total_hours']:.1f} h ({r['max_steps']:,}) |")
    lines += ["", "Memory: fp32 weights + grads + AdamW, EMA, bf16 activations of one micro-batch, fp32 logits, the frozen "
              "teacher (SDTT: a copy of the student; GD: GPT-2 small). Time: training FLOPs (6 x matmul parameters x "
              "tokens + attention) plus the frozen teacher's forward FLOPs, divided by the assumed rate and the device "
              "count (perfect scaling). Each recipe's raw dry-run output is in `<recipe>-<n>gpu.txt`."]
    atomic_write_text(out / "table.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
