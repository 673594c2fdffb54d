"""Render results/sdtt/*.json (written by experiments/sdtt/round_quality.py) as one markdown table per JSON.

    python -m experiments.sdtt.table results/sdtt/mdlm.json [results/sdtt/gd.json ...] --out results/sdtt/table.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.common.output import write_text


def render_val(path: Path, res: dict) -> str:
    """A val_kl_*.json of experiments/sdtt/round_objective.py: each round's objective before and after training."""
    lines = [f"### {path.stem}: validation {res['divergence']} of each round's student (`{res['run']}`)\n",
             "| round | steps | student = teacher (init) | trained student |", "|---|---|---:|---:|"]
    lines += [f"| {r['round']} | {r['steps']} | {r['val_div_init']:.4f} | {r['val_div_trained']:.4f} |"
              for r in res["rows"]]
    return "\n".join(lines) + "\n"


def render_headroom(path: Path, res: dict) -> str:
    """A headroom_*.json of experiments/sdtt/headroom.py: the objective at init vs the best per-position student."""
    lines = [f"### {path.stem}: how far could each round lower its objective? (`{res['run']}`, oracle fitted on "
             f"{res['draws']} first-step draws, {res['batches']} val batches)\n",
             "| round | steps | divergence | at init (= teacher) | best per-position student (held-out draws) | "
             "headroom, lower bound | headroom, upper bound (in-sample) |", "|---|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['round']} | {r['steps']} | {r['divergence']} | {r['init']:.4f} | {r['oracle_heldout']:.4f} | "
              f"{r['headroom_lower']:.4f} ({100 * r['headroom_lower_frac']:.1f}%) | "
              f"{r['headroom_upper']:.4f} ({100 * r['headroom_upper_frac']:.1f}%) |" for r in res["rows"]]
    return "\n".join(lines) + "\n"


def render(path: Path) -> str:
    res = json.loads(path.read_text())
    if "draws" in res:
        return render_headroom(path, res)
    if "divergence" in res:
        return render_val(path, res)
    cfg = res.get("sdtt") or {}
    head = (f"### {path.stem}: teacher `{res['teacher']}`, SDTT run `{res['run']}`\n\n"
            f"{res['num']} samples per row, {res['sampler']} sampler, seed {res['seed']}; SDTT: "
            f"divergence {cfg.get('divergence')}, {cfg.get('steps_per_round')} steps/round, lr {cfg.get('lr')}, "
            f"EMA {cfg.get('ema')}, t sampling {cfg.get('t_sampling')}, reset_optimizer {cfg.get('reset_optimizer')}"
            ".\nExact Gen PPL: the corpus generator scores the samples (band: +-1 standard error of the mean "
            "NLL over samples). Each ungrammatical token scores at the noise floor (~ -12 nats) and the generator "
            "resynchronises after it, so exact Gen PPL mostly counts slips; beside it the violation-free fraction, "
            "the mean number of slips per sample (of 63 tokens), and Gen PPL under the AR judge "
            f"`{res.get('judge')}` (95% CI). Entropy: mean unigram entropy per sample (nats).\n\n")
    lines = ["| model | steps (NFE) | exact Gen PPL | (+-1 s.e.) | entropy | violation-free | slips / "
             "sample | judge Gen PPL [95% CI] |", "|---|---:|---:|---|---:|---:|---:|---|"]
    for r in res["rows"]:
        steps = "-" if r["steps"] is None else f"{r['steps']} ({r['nfe_per_batch']:.0f})"
        judge = (f"{r['judge_ppl']:.2f} [{r['judge_ppl_ci95'][0]:.2f}, {r['judge_ppl_ci95'][1]:.2f}]"
                 if "judge_ppl" in r else "-")
        slips = f"{r['slips_per_sample']:.2f}" if "slips_per_sample" in r else "-"
        lines.append(f"| {r['model']} | {steps} | {r['gen_ppl']:.1f} | {r['gen_ppl_lo']:.1f}-{r['gen_ppl_hi']:.1f} "
                     f"| {r['entropy']:.3f} | {r['violation_free']:.3f} | {slips} | {judge} |")
    return head + "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--verdict", default=None, help="a paragraph that opens the table (the question's verdict)")
    args = ap.parse_args()
    text = (f"{args.verdict}\n\n" if args.verdict else "") + \
        "# SDTT on the built-in corpus\n\nRegenerate: see COMMAND.md in this folder.\n\n"
    text += "\n".join(render(Path(p)) for p in args.json)
    write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
