"""How much of softmax(xi) -- the GD student's noise input -- lies on the tokens the teacher could choose?

The teacher's sample is x_i = argmax(log p_T(. | x_<i) + xi_i): only the noise values at the tokens the teacher
gives real probability decide it. The published noise embedding feeds the student `W softmax(xi_i)`; softmax of V
Gumbel variables is dominated by its few largest entries, wherever they fall. For prior noise xi and the teacher's
own sample x* = f(xi) (the built-in corpus's exact generator), per position 1..L-1 this reports: the size of the
teacher's support S_i = {x : p_T(x | x*_<i) > --threshold}, the softmax(xi_i) mass on S_i (and what a uniform
spread over V would put there, |S_i| / V), how often argmax xi_i falls in S_i, and the softmax(xi_i) weight of the
chosen token x*_i.

    python -m experiments.gumbel.noise_on_support --num 128 --json results/gumbel_distillation/noise_info.json
"""

from __future__ import annotations

import argparse

import torch

from experiments.common.output import save
from experiments.gumbel.noise_map import prior_noise_and_sample
from experiments.common.cli import positive_int


@torch.no_grad()
def noise_info(teacher, xi: torch.Tensor, x: torch.Tensor, threshold: float) -> dict:
    """xi: [N, L, V] prior noise, x: [N, L] = f(xi) -> the per-position averages described in the module doc."""
    logp = teacher.next_token_log_probs(x)[:, :-1].double()  # predicts x[:, 1:]
    v = logp.shape[-1]
    noise = xi[:, 1:, :v]
    support = logp.exp() > threshold
    soft = torch.softmax(noise, dim=-1)
    chosen = x[:, 1:, None]
    return {"vocab": v, "support_size": float(support.sum(-1).float().mean()),
            "softmax_mass_on_support": float((soft * support).sum(-1).mean()),
            "uniform_mass_on_support": float(support.sum(-1).float().mean() / v),
            "argmax_in_support": float(support.gather(-1, noise.argmax(-1, keepdim=True)).float().mean()),
            "softmax_weight_of_chosen": float(soft.gather(-1, chosen).mean()),
            "teacher_prob_of_chosen": float(logp.gather(-1, chosen).exp().mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=positive_int, default=128, help="noise draws (sequences)")
    ap.add_argument("--length", type=positive_int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=1e-3, help="teacher probability that puts a token in S_i")
    ap.add_argument("--json", default=None, help="write the result here (and a .md table beside it)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from paradistill.distill.teachers import GrammarTeacher

    teacher = GrammarTeacher()
    xi, x = prior_noise_and_sample(teacher, args.num, args.length, teacher.vocab_size, teacher.grammar.bos_id,
                                   args.seed)
    r = noise_info(teacher, xi, x, args.threshold)
    md = "\n".join([
        f"Built-in generator as teacher, {args.num} prior noise draws x {args.length - 1} positions; support S_i: "
        f"tokens with teacher probability > {args.threshold}.\n",
        "| quantity (mean over positions) | value |", "|---|---:|",
        f"| vocabulary size V | {r['vocab']} |",
        f"| teacher support size \\|S_i\\| | {r['support_size']:.1f} |",
        f"| softmax(xi) mass on S_i | {100 * r['softmax_mass_on_support']:.2f}% |",
        f"| the same for a uniform spread, \\|S_i\\| / V | {100 * r['uniform_mass_on_support']:.2f}% |",
        f"| argmax xi_i falls in S_i | {100 * r['argmax_in_support']:.2f}% |",
        f"| softmax(xi) weight of the chosen token x*_i | {100 * r['softmax_weight_of_chosen']:.3f}% |",
        f"| teacher probability of the chosen token | {100 * r['teacher_prob_of_chosen']:.1f}% |"])
    save(args, [r], md)


if __name__ == "__main__":
    main()
