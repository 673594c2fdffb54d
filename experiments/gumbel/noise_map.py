r"""Has a Gumbel-distilled student learned the noise -> text map? Agreement of its samples with the teacher's.

For prior Gumbel noise `xi` (per-sample seeds, the stream used at inference), the teacher's own sample is the
deterministic `x* = f(xi)`: `x*_i = argmax(log p_T(. | x*_<i) + xi_i)` (here the built-in corpus's exact generator).
A student that has learned the map reproduces `x*` from the same noise; one that ignores the noise agrees with it
only by chance. Each GD student samples with the noise `tau * xi` (default tau = 1; MDLM baselines without noise:
the chance level), with the ancestral sampler at T steps and first-hitting (T = L); reported per model and
setting: the fraction of positions 1..L-1 equal to x*, the mean length of the agreeing prefix, and the local
agreement: the fraction of positions where the sample equals the teacher's Gumbel-max choice *after the sample's own
prefix*, argmax(log p_T(. | x_<i) + xi_i), beside its chance level (the mean teacher probability of the sample's
tokens: what it would be had they been drawn without the noise). Once a sample departs from x* the first two fall to
chance even for a student that follows the noise perfectly; the local agreement does not (a perfect student: 100%).

    python -m experiments.gumbel.noise_map --model mdlm=runs/base/mdlm --model gd=runs/gumbel/gd-mdlm \
        --steps 8 16 --first-hitting --num 128 --json results/gumbel_distillation/noise_map.json
"""

from __future__ import annotations

import argparse
import torch

from experiments.common.models import load_model, model_args
from experiments.common.output import save
from experiments.common.cli import positive_int


@torch.no_grad()
def teacher_from_noise(teacher, xi: torch.Tensor, bos_id: int) -> torch.Tensor:
    """xi: [N, L, V] float64 prior Gumbel noise -> the teacher's Gumbel-max sample [N, L] (BOS first)."""
    x = torch.full(xi.shape[:2], bos_id, dtype=torch.long)
    for i in range(1, xi.shape[1]):
        logp = teacher.next_token_log_probs(x[:, :i])[:, -1].double()
        x[:, i] = (logp + xi[:, i, : logp.shape[-1]]).argmax(-1)
    return x


def prior_noise_and_sample(teacher, num: int, length: int, vocab: int, bos_id: int, seed: int):
    """(xi, x*): prior Gumbel noise [num, length, vocab] float64 from per-sample seeds drawn with `seed` (the stream
    used at inference), and the teacher's own sample x* = f(xi) [num, length]."""
    from paradistill.distill.gumbel_noise import draw_seeds, fresh_noise

    seeds = draw_seeds(num, torch.Generator().manual_seed(seed))
    xi = fresh_noise(seeds, length, vocab, "gumbel", 1.0, "dense", dtype=torch.float64)
    return xi, teacher_from_noise(teacher, xi, bos_id)


STUDENT_KINDS = ("mdlm", "bd3lm", "gd-mdlm", "gd-bd3lm")


@torch.no_grad()
def student_from_noise(loaded, xi: torch.Tensor, tau: float, sampler: str, steps: int, seed: int) -> torch.Tensor:
    """Samples of `loaded` (mdlm / bd3lm, or their gd-* students seeing the noise tau * xi) at `steps` steps (per
    block for block models), from the all-masked template."""
    from paradistill.distill.gumbel import NoiseInjected
    from paradistill.generation import build_template
    from paradistill.sampling.base import Denoiser, SamplingOptions, run_sampler
    from paradistill.sampling.bd3lm import BD3Denoiser
    from paradistill.sampling.registry import build_sampler

    tok, model, kind = loaded.tokenizer, loaded.model, loaded.kind
    row, fixed_row = build_template(tok, xi.shape[1], None, None, True)
    n = xi.shape[0]
    wrapped = NoiseInjected(model, (tau * xi).float(), tok.mask_id) if kind.startswith("gd-") else model
    block = int(loaded.method["block_size"]) if kind in ("bd3lm", "gd-bd3lm") else None
    denoiser = BD3Denoiser(wrapped, tok.mask_id, block, batch_size=n, length=xi.shape[1]) if block else \
        Denoiser(wrapped, tok.mask_id)
    options = SamplingOptions(1.0, 1.0, "sample", (tok.pad_id,))
    gen = torch.Generator().manual_seed(seed)
    res = run_sampler(build_sampler(sampler, block_size=block, pad_id=tok.pad_id), denoiser,
                      row.expand(n, -1).clone(), fixed_row.expand(n, -1).clone(), gen, steps, options)
    return res.tokens


@torch.no_grad()
def noise_following(teacher, out: torch.Tensor, xi: torch.Tensor, target: torch.Tensor) -> dict:
    """out, target: [N, L] (target = x* = f(xi)); xi: [N, L, V] -> over positions 1..L-1:
    agreement: share equal to x*; prefix: mean agreeing-prefix length;
    local_agreement: share equal to the teacher's Gumbel-max choice after out's own prefix,
    argmax(log p_T(. | out_<i) + xi_i) -- 100% for a student that follows the noise wherever its text goes;
    local_chance: what the local agreement would be if these tokens had been drawn without looking at xi, the mean
    teacher probability p_T(out_i | out_<i) (Gumbel-max picks token x with probability p_T(x)). A student that uses
    the noise has local_agreement above its own local_chance."""
    same = out[:, 1:] == target[:, 1:]
    prefix = same.long().cumprod(1).sum(1).float()
    logp = teacher.next_token_log_probs(out)[:, :-1].double()
    local = out[:, 1:] == (logp + xi[:, 1:, : logp.shape[-1]]).argmax(-1)
    chance = logp.gather(-1, out[:, 1:, None]).squeeze(-1).exp()
    return {"agreement": float(same.float().mean()), "prefix": float(prefix.mean()),
            "local_agreement": float(local.float().mean()), "local_chance": float(chance.mean())}


def agreement_rows(label: str, loaded, teacher, steps: list[int], first_hitting: bool, num: int, length: int,
                   seed: int, noise_temperature: float) -> list[dict]:
    """One row per sampler setting: how often `loaded` (a GD student, or an MDLM = chance) reproduces x* = f(xi)."""
    if loaded.kind not in STUDENT_KINDS:
        raise SystemExit(f"{label}={loaded.path}: a '{loaded.kind}' checkpoint; the noise map compares "
                         f"masked-diffusion models ({', '.join(STUDENT_KINDS)}) with the teacher")
    xi, target = prior_noise_and_sample(teacher, num, length, loaded.model.cfg.vocab_size, loaded.tokenizer.bos_id,
                                        seed)
    gd = loaded.kind.startswith("gd-")
    tau = noise_temperature if gd else None
    rows = []
    for sampler, t in [("ancestral", s) for s in steps] + ([("first-hitting", 1)] if first_hitting else []):
        out = student_from_noise(loaded, xi, tau or 1.0, sampler, t, seed)
        row = {"model": label, "checkpoint": str(loaded.path), "noise": gd, "noise_temperature": tau,
               "sampler": sampler, "steps": t if sampler == "ancestral" else "L", "num": num,
               **noise_following(teacher, out, xi, target)}
        rows.append(row)
        print(f"{label:18s} {sampler:13s} T={row['steps']!s:3s} agreement {row['agreement']:.3f} "
              f"prefix {row['prefix']:.2f} local {row['local_agreement']:.3f} (chance {row['local_chance']:.3f})",
              flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, metavar="LABEL=RUN",
                    help="mdlm / bd3lm runs (chance level) or their gd-* students")
    ap.add_argument("--steps", type=positive_int, nargs="*", default=[8, 16], help="ancestral step counts")
    ap.add_argument("--first-hitting", action="store_true", help="also first-hitting (T = L)")
    ap.add_argument("--num", type=positive_int, default=128)
    ap.add_argument("--length", type=positive_int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise-temperature", type=float, default=1.0,
                    help="scale of the noise the GD students see (default 1: the teacher's own noise)")
    ap.add_argument("--json", default=None, help="write the rows here (and a .md table beside it)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from paradistill.distill.teachers import GrammarTeacher

    models = model_args(args.model)
    teacher = GrammarTeacher()
    rows = []
    for label, path in models:
        rows += agreement_rows(label, load_model(label, path), teacher, args.steps, args.first_hitting, args.num,
                               args.length, args.seed, args.noise_temperature)
    lines = ["| model | noise temp. | sampler | T | tokens equal to the teacher's x* = f(xi) | agreeing prefix (of "
             f"{args.length - 1}) | local agreement: tokens equal to the teacher's choice after the sample's own "
             "prefix | local agreement if the noise were ignored |", "|---|---:|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['noise_temperature'] or '(no noise)'} | {r['sampler']} | {r['steps']} | "
              f"{100 * r['agreement']:.1f}% | {r['prefix']:.2f} | {100 * r['local_agreement']:.1f}% | "
              f"{100 * r['local_chance']:.1f}% |" for r in rows]
    md = "\n".join(lines)
    save(args, rows, md)


if __name__ == "__main__":
    main()
