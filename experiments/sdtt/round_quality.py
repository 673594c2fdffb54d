r"""Evaluate an SDTT run on the built-in corpus: exact Gen PPL and unigram entropy of ancestral samples.

Rows: the teacher at several step counts, then each round's student at its own step count (read from
RUN/round_<r>_<m>steps), plus the held-out data as a reference. Gen PPL is exact: exp of the mean over samples
and positions 1..L-1 of -log p(x_i | x_<i) under StoryGrammar (the corpus's generator). Entropy: the unigram
entropy (nats) of each sample's tokens at positions 1..L-1, averaged over samples.
Each ungrammatical token scores at the noise floor (~ -12 nats) and the generator then resynchronises, so exact
Gen PPL mostly counts slips. Beside it: the fraction of samples with no violation, the mean number of slips
(ungrammatical tokens) per sample, and Gen PPL under an AR judge (--judge,
default runs/base/ar, eval/metrics.py conventions).

    python -m experiments.sdtt.round_quality --teacher runs/base/mdlm --run runs/sdtt/mdlm --teacher-steps 8 16 32 64 128 \
        --num 128 --json results/sdtt/mdlm.json
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import torch

from experiments.common.models import load_run
from experiments.common.output import write_json
from experiments.common.scoring import SDTT_FIELDS, exact_score
from experiments.common.cli import positive_int


def judge_ppl(tokens: torch.Tensor, judge) -> dict:
    from paradistill.eval.metrics import gen_ppl

    res = gen_ppl(judge, tokens[:, 1:].tolist())  # judge tokens without the leading BOS (scored given BOS)
    return {"judge_ppl": res["ppl"], "judge_ppl_ci95": res["ppl_ci95"]}


def load_run_judge(spec: str):
    """eval.metrics.load_judge with a one-line error naming --judge."""
    from paradistill.errors import UserError
    from paradistill.eval.metrics import load_judge

    try:
        return load_judge(spec)
    except UserError as err:
        raise SystemExit(f"--judge {spec}: {err}") from None


def score(tokens: torch.Tensor, judge=None) -> dict:
    """tokens: [N, L] long (position 0 = BOS) -> the exact scores (experiments.common.scoring), + the judge's."""
    return {**exact_score(tokens).row(SDTT_FIELDS), **(judge_ppl(tokens, judge) if judge is not None else {})}


def sample_row(path, steps: int, num: int, seed: int, batch_size: int, label: str, judge=None,
               samples_dir: Path | None = None, option: str = "--teacher") -> dict:
    from paradistill import api

    loaded = load_run(path, option)
    start = time.perf_counter()
    res = api.generate(loaded, num, sampler="ancestral", steps=steps, batch_size=batch_size, seed=seed,
                       progress=False)
    row = {"model": label, "kind": loaded.kind, "checkpoint": str(loaded.path), "steps": steps,
           "nfe_per_batch": sum(res.nfe) / len(res.nfe), "seconds": time.perf_counter() - start,
           **score(res.tokens, judge)}
    if samples_dir is not None:
        samples_dir.mkdir(parents=True, exist_ok=True)
        torch.save(res.tokens, samples_dir / f"{label.replace(' ', '_')}_{steps}steps.pt")
    print(f"{label:28s} steps {steps:4d}  Gen PPL {row['gen_ppl']:8.3f}  entropy {row['entropy']:.3f}  "
          f"NFE {row['nfe_per_batch']:.1f}  judge PPL {row.get('judge_ppl', float('nan')):.2f}  "
          f"violation-free {row['violation_free']:.3f}", flush=True)
    return row


def rounds(run: Path) -> list[tuple[int, int, Path]]:
    out = []
    for d in run.glob("round_*steps"):
        m = re.fullmatch(r"round_(\d+)_(\d+)steps", d.name)
        if m and (d / "latest.json").is_file() and json.loads((d / "latest.json").read_text()).get("final"):
            out.append((int(m.group(1)), int(m.group(2)), d))
    return sorted(out)


def data_row(recipe: str, num: int, judge=None) -> dict:
    from paradistill import api

    data = api.prepare(api.load_recipe(recipe), progress=False)
    tokens = torch.from_numpy(data.val[:num].astype("int64"))
    return {"model": "data (val rows)", "kind": "data", "steps": None, **score(tokens, judge)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True, help="teacher checkpoint / run directory")
    ap.add_argument("--run", required=True, help="SDTT output directory (holds round_<r>_<m>steps/)")
    ap.add_argument("--teacher-steps", type=positive_int, nargs="+", default=[8, 16, 32, 64, 128])
    ap.add_argument("--num", type=positive_int, default=128, help="samples per row")
    ap.add_argument("--batch-size", type=positive_int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recipe", default="tiny", help="recipe of the data reference row")
    ap.add_argument("--label", default="teacher", help="name of the teacher in the table")
    ap.add_argument("--json", required=True, help="output JSON")
    ap.add_argument("--judge", default="runs/base/ar", help="AR checkpoint scoring the samples ('' to skip)")
    ap.add_argument("--samples-dir", default=None, help="save each row's sampled tokens here (.pt)")
    ap.add_argument("--threads", type=positive_int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not Path(args.run).is_dir():
        raise SystemExit(f"--run {args.run}: no such folder; pass the --out folder of `paradistill distill sdtt`")
    load_run(args.teacher, "--teacher")  # a bad teacher ends here in one line, before any sampling
    judge = load_run_judge(args.judge) if args.judge else None
    sdir = Path(args.samples_dir) if args.samples_dir else None
    rows = [data_row(args.recipe, args.num, judge)]
    for steps in args.teacher_steps:
        rows.append(sample_row(args.teacher, steps, args.num, args.seed, args.batch_size, args.label, judge, sdir))
    for r, m, d in rounds(Path(args.run)):
        rows.append(sample_row(d, m, args.num, args.seed, args.batch_size, f"SDTT round {r} student", judge, sdir,
                               option="--run"))
    out = Path(args.json)
    sdtt = Path(args.run) / "sdtt.json"
    config = json.loads(sdtt.read_text())["config"] if sdtt.is_file() else None
    write_json(out, {"teacher": args.teacher, "run": args.run, "sdtt": config, "judge": args.judge, "rows": rows,
                     "num": args.num, "seed": args.seed, "sampler": "ancestral (cached, float64)"})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
