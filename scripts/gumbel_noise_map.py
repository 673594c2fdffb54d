"""Has a Gumbel-distilled student learned the noise -> text map? Agreement of its samples with the teacher's.

For prior Gumbel noise `xi` (per-sample seeds, the stream used at inference), the teacher's own sample is the
deterministic `x* = f(xi)`: `x*_i = argmax(log p_T(. | x*_<i) + xi_i)` (here the built-in corpus's exact generator).
A student that has learned the map reproduces `x*` from the same noise; one that ignores the noise agrees with it
only by chance. Each GD student samples with the noise `tau * xi` (default tau = 1; MDLM baselines without noise:
the chance level), with the ancestral sampler at T steps and first-hitting (T = L); reported per model and
setting: the fraction of positions 1..L-1 equal to x*, and the mean length of the agreeing prefix.

    python scripts/gumbel_noise_map.py --model mdlm=runs/base/mdlm --model gd=runs/gumbel/gd-mdlm \
        --steps 8 16 --first-hitting --num 128 --json results/gumbel_distillation/noise_map.json
"""

from __future__ import annotations

import argparse
import torch


@torch.no_grad()
def teacher_from_noise(teacher, xi: torch.Tensor, bos_id: int) -> torch.Tensor:
    """xi: [N, L, V] float64 prior Gumbel noise -> the teacher's Gumbel-max sample [N, L] (BOS first)."""
    x = torch.full(xi.shape[:2], bos_id, dtype=torch.long)
    for i in range(1, xi.shape[1]):
        logp = teacher.next_token_log_probs(x[:, :i])[:, -1].double()
        x[:, i] = (logp + xi[:, i, : logp.shape[-1]]).argmax(-1)
    return x


@torch.no_grad()
def student_from_noise(loaded, xi: torch.Tensor, tau: float, sampler: str, steps: int, seed: int) -> torch.Tensor:
    from paradistill.distill.gumbel import NoiseInjected
    from paradistill.generation import build_template
    from paradistill.sampling.base import Denoiser, SamplingOptions, run_sampler
    from paradistill.sampling.registry import build_sampler

    tok, model = loaded.tokenizer, loaded.model
    row, fixed_row = build_template(tok, xi.shape[1], None, None, True)
    n = xi.shape[0]
    wrapped = NoiseInjected(model, (tau * xi).float(), tok.mask_id) if loaded.kind.startswith("gd-") else model
    options = SamplingOptions(1.0, 1.0, "sample", (tok.pad_id,))
    gen = torch.Generator().manual_seed(seed)
    res = run_sampler(build_sampler(sampler), Denoiser(wrapped, tok.mask_id), row.expand(n, -1).clone(),
                      fixed_row.expand(n, -1).clone(), gen, steps, options)
    return res.tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, metavar="LABEL=RUN", help="mdlm or gd-mdlm runs")
    ap.add_argument("--steps", type=int, nargs="*", default=[8, 16], help="ancestral step counts")
    ap.add_argument("--first-hitting", action="store_true", help="also first-hitting (T = L)")
    ap.add_argument("--num", type=int, default=128)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise-temperature", type=float, default=1.0,
                    help="scale of the noise the GD students see (default 1: the teacher's own noise)")
    ap.add_argument("--json", default=None, help="write the rows here (and a .md table beside it)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from paradistill import api
    from paradistill.distill.gumbel_noise import draw_seeds, fresh_noise
    from paradistill.distill.teachers import GrammarTeacher

    teacher = GrammarTeacher()
    rows = []
    for label, path in (m.split("=", 1) for m in args.model):
        loaded = api.load(path)
        vocab = loaded.model.cfg.vocab_size
        seeds = draw_seeds(args.num, torch.Generator().manual_seed(args.seed))
        xi = fresh_noise(seeds, args.length, vocab, "gumbel", 1.0, "dense", dtype=torch.float64)
        target = teacher_from_noise(teacher, xi, loaded.tokenizer.bos_id)
        gd = loaded.kind.startswith("gd-")
        tau = args.noise_temperature if gd else None
        settings = [("ancestral", s) for s in args.steps] + ([("first-hitting", 1)] if args.first_hitting else [])
        for sampler, steps in settings:
            out = student_from_noise(loaded, xi, tau or 1.0, sampler, steps, args.seed)
            same = out[:, 1:] == target[:, 1:]
            prefix = same.long().cumprod(1).sum(1).float()
            row = {"model": label, "checkpoint": str(loaded.path), "noise": gd, "noise_temperature": tau,
                   "sampler": sampler, "steps": steps if sampler == "ancestral" else "L", "num": args.num,
                   "agreement": float(same.float().mean()), "prefix": float(prefix.mean())}
            rows.append(row)
            print(f"{label:18s} {sampler:13s} T={row['steps']!s:3s} agreement {row['agreement']:.3f} "
                  f"prefix {row['prefix']:.2f}", flush=True)
    lines = ["| model | noise temp. | sampler | T | tokens equal to the teacher's x* = f(xi) | agreeing prefix (of "
             f"{args.length - 1}) |", "|---|---:|---|---|---:|---:|"]
    lines += [f"| {r['model']} | {r['noise_temperature'] or '(no noise)'} | {r['sampler']} | {r['steps']} | "
              f"{100 * r['agreement']:.1f}% | {r['prefix']:.2f} |" for r in rows]
    md = "\n".join(lines)
    from gumbel_eval import save  # scripts/ is on sys.path when this script runs

    save(args, rows, md)


if __name__ == "__main__":
    main()
