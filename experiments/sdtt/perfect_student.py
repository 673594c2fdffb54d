r"""What would a *perfect* SDTT student sample like? The headroom bound of experiments/sdtt/headroom.py, in Gen PPL.

One SDTT round trains a student at step size 2 dt to match, on every masked position of x_t, its teacher's two
ancestral steps of size dt. The student does not see the teacher's random first step, so the best it can do
(reverse KL, the default divergence) is, per position, the normalised geometric mean of the targets over first-step
draws: `g = softmax(E_y log target_y)` (see experiments/sdtt/headroom.py). This script *samples with that oracle*: an ancestral
sampler at T steps whose prediction at every step is g, estimated from `--draws` fresh two-step draws of the teacher
(1 + draws teacher passes per step). It is the best any one-round student distilled from the teacher at 2T
steps can sample at T steps, whatever its size or training length; beside it the teacher itself at T and at 2T
steps, same sampler, seeds and scoring (exact Gen PPL under the corpus's generator, unigram entropy). A finite
number of draws makes g slightly sharper than its expectation (it is fitted on the draws it uses), so the oracle
is if anything optimistic.

`--rounds R` nests the oracle: round r's oracle is the teacher of round r + 1, so the student at T steps descends
from the teacher at T * 2^R steps through R perfect rounds ((1 + draws)^R teacher passes per step).

    python -m experiments.sdtt.perfect_student --teacher runs/base/mdlm --steps 16 --draws 16 --num 128 \
        --json results/sdtt/oracle_T16.json
    python -m experiments.sdtt.perfect_student --table results/sdtt/oracle_T*.json --json results/sdtt/oracle.json   # + .md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from experiments.common.models import load_run
from experiments.common.output import write_json, write_text
from experiments.common.scoring import GUMBEL_FIELDS, exact_score
from experiments.common.cli import positive_int


class OracleDenoiser:
    """(x, t) -> the reverse-KL-optimal one-pass student of one SDTT round: softmax of the mean over `draws` of the
    teacher's two-step targets log-probs (step dt each) from (x, t)."""

    def __init__(self, base, schedule, dt: float, draws: int, generator: torch.Generator):
        self.base, self.schedule, self.dt, self.draws, self.generator = base, schedule, dt, draws, generator
        self.mask_id = base.mask_id
        self.time_conditioned = True  # its prediction depends on t: the sampler must not reuse it across steps

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        from paradistill.distill.sdtt import two_step_target

        t64 = t.double()
        t_mid = (t64 - self.dt).clamp(min=0.0)
        masked = x == self.mask_id
        lp1 = self.base(x, t)
        t_second = t_mid.float()

        def second(x_mid):  # the teacher's pass after the first step
            return self.base(x_mid, t_second)

        total = torch.zeros_like(lp1, dtype=torch.float64)
        for _ in range(self.draws):
            target = two_step_target(lp1, second, x, masked, t64, t_mid, self.schedule, self.generator)[0]
            total += target.double().clamp(min=-1e4)
        return torch.log_softmax(total / self.draws, dim=-1).float()


def sample(loaded, denoiser, steps: int, num: int, batch: int, seed: int):
    from paradistill.generation import generate

    return generate(loaded, num, sampler="ancestral", steps=steps, batch_size=batch, seed=seed, progress=False,
                    denoiser=denoiser).tokens


def summarise(paths: list[str]) -> tuple[list[dict], str]:
    """One row per oracle run: the perfect student against the teacher at T and at T * 2^rounds (same seeds)."""
    rows = []
    for path in paths:
        try:
            run = json.loads(Path(path).read_text())
            teacher = {r["steps"]: r for r in run["rows"] if r["model"] == "teacher"}
            oracle = next(r for r in run["rows"] if r["model"] != "teacher")
            steps, rounds = oracle["steps"], oracle.get("rounds") or 1
            at_t, at_top = teacher[steps], teacher[steps * 2 ** rounds]
        except (OSError, ValueError, KeyError, StopIteration) as err:
            raise SystemExit(f"--table {path}: not the --json of a experiments/sdtt/perfect_student.py run ({type(err).__name__}: {err})") from None
        rows.append({"file": path, "steps": steps, "rounds": rounds, "draws": oracle["draws"],
                     "teacher_steps": steps * 2 ** rounds, "oracle_gen_ppl": oracle["gen_ppl"],
                     "oracle_band": [oracle["gen_ppl_lo"], oracle["gen_ppl_hi"]], "oracle_entropy": oracle["entropy"],
                     "teacher_at_T": at_t["gen_ppl"], "teacher_at_T_entropy": at_t["entropy"],
                     "teacher_at_top": at_top["gen_ppl"], "change_vs_teacher_at_T": oracle["gen_ppl"] / at_t["gen_ppl"] - 1,
                     "gap_closed": (at_t["gen_ppl"] - oracle["gen_ppl"]) / (at_t["gen_ppl"] - at_top["gen_ppl"])})
    lines = ["| T (student) | rounds | from teacher at | draws | perfect student (+-1 s.e.) | teacher at T | change | "
             "teacher at its own steps | share of the gap closed | entropy: student / teacher at T |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lo, hi = r["oracle_band"]
        lines.append(f"| {r['steps']} | {r['rounds']} | {r['teacher_steps']} | {r['draws']} | {r['oracle_gen_ppl']:.1f} "
                     f"({lo:.1f}-{hi:.1f}) | {r['teacher_at_T']:.1f} | {100 * r['change_vs_teacher_at_T']:+.1f}% | "
                     f"{r['teacher_at_top']:.1f} | {100 * r['gap_closed']:.0f}% | {r['oracle_entropy']:.3f} / "
                     f"{r['teacher_at_T_entropy']:.3f} |")
    return rows, "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", help="an MDLM run or checkpoint (EMA weights)")
    ap.add_argument("--steps", type=positive_int, help="T: the student's step count (the teacher's is 2T)")
    ap.add_argument("--draws", type=positive_int, default=16, help="two-step teacher draws averaged per sampling step")
    ap.add_argument("--rounds", type=positive_int, default=1, help="perfect SDTT rounds from the teacher at T * 2^rounds steps")
    ap.add_argument("--num", type=positive_int, default=128)
    ap.add_argument("--batch-size", type=positive_int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=positive_int, default=1)
    ap.add_argument("--json", required=True)
    ap.add_argument("--table", nargs="+", metavar="JSON", help="instead of sampling: tabulate earlier --json outputs "
                    "(writes --json and a markdown table beside it)")
    args = ap.parse_args()
    if args.table:
        rows, md = summarise(args.table)
        print(md)
        write_json(args.json, {"rows": rows})
        write_text(Path(args.json).with_suffix(".md"), md + "\n")
        return
    if args.teacher is None or args.steps is None:
        raise SystemExit("give --teacher and --steps (or --table JSON ... to tabulate earlier runs)")
    if min(args.steps, args.draws, args.num, args.rounds) < 1:
        raise SystemExit("--steps, --draws, --num and --rounds must be >= 1")
    torch.set_num_threads(args.threads)
    from paradistill.diffusion.schedules import LogLinear
    from paradistill.sampling.base import Denoiser

    loaded = load_run(args.teacher, "--teacher", use_ema=True)
    if loaded.kind != "mdlm":
        raise SystemExit(f"--teacher {args.teacher}: a {loaded.kind} checkpoint; this oracle is written for MDLM")
    base = Denoiser(loaded.model, loaded.tokenizer.mask_id)
    rows, oracle, gen = [], base, torch.Generator().manual_seed(args.seed + 1)
    for r in range(args.rounds):  # round r + 1: teacher at T * 2^(R - r) steps -> student at half of it
        oracle = OracleDenoiser(oracle, LogLinear(), 1.0 / (args.steps * 2 ** (args.rounds - r)), args.draws, gen)
    label = f"oracle SDTT student, {args.rounds} round{'s' if args.rounds > 1 else ''}, {args.draws} draws"
    settings = [("teacher", args.steps * 2 ** r, base) for r in range(args.rounds, -1, -1)]
    settings.append((label, args.steps, oracle))
    for label, steps, den in settings:
        start = time.perf_counter()
        tokens = sample(loaded, den, steps, args.num, args.batch_size, args.seed)
        row = {"model": label, "steps": steps, "draws": args.draws if label != "teacher" else None,
               "rounds": args.rounds if label != "teacher" else None,
               "seconds": time.perf_counter() - start, **exact_score(tokens).row(GUMBEL_FIELDS)}
        print(f"{label:20s} T={steps:4d} Gen PPL {row['gen_ppl']:8.2f} [{row['gen_ppl_lo']:.1f}, "
              f"{row['gen_ppl_hi']:.1f}] entropy {row['entropy']:.3f}", flush=True)
        rows.append(row)
    write_json(args.json, {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
