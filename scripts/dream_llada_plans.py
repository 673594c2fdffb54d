"""Dry-run plans of the releases (issue #26): ADJUST with recipe adjust-dream7b on Dream-v0-Base-7B, and sampling
LLaDA-8B-Instruct / Dream-v0-Instruct-7B, on the devices of methods/dlm_plans.DEVICES. Nothing is downloaded.
Writes plans.json and plans.md into --out (the same numbers as `--dry-run` of `distill adjust` / `sample`).

    python scripts/dream_llada_plans.py --out results/dream_llada
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/dream_llada")
    args = p.parse_args()
    from paradistill.checkpoint import atomic_write_text
    from paradistill.memory import human
    from paradistill.methods.dlm_plans import DEVICES, MFU, plan_adjust, plan_sampling
    from paradistill.recipes import load_recipe

    recipe = load_recipe("adjust-dream7b")
    adjust = [plan_adjust("hf:Dream-org/Dream-v0-Base-7B", recipe, d) for d in DEVICES]
    sampling = [plan_sampling(base, prompt, gen, gen, batch, "bf16", d)
                for base, prompt, gen in (("hf:GSAI-ML/LLaDA-8B-Instruct", 64, 128),
                                          ("hf:GSAI-ML/LLaDA-8B-Instruct", 64, 512),
                                          ("hf:Dream-org/Dream-v0-Instruct-7B", 64, 256))
                for batch in (1, 8) for d in DEVICES]
    lines = [f"**Verdict:** estimates, not measurements (no GPU was available to this session): sampling LLaDA-8B "
             f"in bf16 needs ~{human(sampling[0]['memory_bytes'])} at batch 1 and, with one full forward per step "
             f"(steps = gen length 128), costs ~{sampling[0]['ms_per_generated_token']:.1f} ms per generated token "
             f"on an {sampling[0]['device']} (compute-bound even at batch 1: every step is a forward over the "
             "whole prompt + generation); ADJUST with the official Dream settings "
             f"spends most of its time recording trajectories (~{adjust[0]['trajectory_hours']:.0f} h on one "
             f"{adjust[0]['device']}) and ~{adjust[0]['train_hours']:.1f} h training {recipe.adjust.steps} steps.",
             "", f"Assumptions: {sampling[0]['assumptions']}; MFU {MFU:.0%}. Parameters counted exactly from the "
             "releases' config values on the meta device.", "",
             "## Sampling", "",
             "| model | device | batch | prompt + gen | steps | memory | ms / forward | ms / generated token |",
             "|---|---|---|---|---|---|---|---|"]
    for s in sampling:
        lines.append(f"| {s['base']} | {s['device']} | {s['batch']} | {s['prompt_tokens']} + {s['gen_length']} | "
                     f"{s['steps']} | {human(s['memory_bytes'])} | {1000 * s['seconds_per_forward']:.2f} | "
                     f"{s['ms_per_generated_token']:.2f} |")
    lines += ["", "## ADJUST, recipe adjust-dream7b on Dream-v0-Base-7B", "",
              "| device | base params | sampler params | trajectories | trajectory h | train steps | mean k | train h | "
              "memory |", "|---|---|---|---|---|---|---|---|---|"]
    for a in adjust:
        lines.append(f"| {a['device']} | {a['base_parameters'] / 1e9:.3f} B | {a['sampler_parameters'] / 1e6:.1f} M | "
                     f"{a['trajectories']} | {a['trajectory_hours']:.1f} | {a['train_steps']} | {a['mean_unroll']:.2f} | "
                     f"{a['train_hours']:.2f} | {human(a['memory_bytes'])} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "plans.md", "\n".join(lines) + "\n")
    atomic_write_text(out / "plans.json", json.dumps({"adjust": adjust, "sampling": sampling}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
