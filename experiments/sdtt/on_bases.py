"""Does SDTT on the shipped MDLM base give an 8-step student that samples like its 64-step teacher? (issue #29)

The runs of `experiments/sdtt/on_bases.sh`: builtin:mdlm distilled 64 -> 32 -> 16 -> 8 steps in three rounds, with
two round protocols (ours: the EMA student is the next teacher, fresh Adam and EMA per round; official: the raw
student is the next teacher, Adam and EMA carried) and three training seeds each. The last student is sampled at
every T in --steps, the teacher (no distillation) at the same T; all ancestral, scored exactly under the corpus's
generator. Per seed, the effects (mean NLL per token, arm minus reference): the student at T against the teacher at
64 steps (SDTT's claim), the student at T against the teacher at the same T (what distillation bought), and the
official protocol against ours at the same T and seed; over seeds, the mean with a 95% t interval (never narrower
than the seeds' own sampling error implies).

    python -m experiments.sdtt.on_bases --runs runs/sdtt-bases --seeds 0 1 2 --num 256 --out results/sdtt/on_bases

Rows already in OUT/rows.json are kept (re-running resumes); --summarize only rewrites the tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

from experiments.common.models import load_model
from experiments.common.output import write_json
from experiments.common.seeds import (EFFECT_HEADER, FLOOR_NOTE, add_study_arguments, nll_effect_row, rows_table,
                                      run_study, sample_seed)
from experiments.common.cli import positive_int

PROTOCOLS = ("paradistill", "official")
TEACHER = "builtin:mdlm"


def evaluate(args, rows: list[dict], out: Path) -> list[dict]:
    from experiments.eval.sample_quality import run_setting

    done = {(r["arm"], r["train_seed"], r["steps"]) for r in rows}
    models = [("teacher", None, TEACHER)] + [(p, s, Path(args.runs) / f"{p}-s{s}") for s in args.seeds
                                             for p in PROTOCOLS]
    for arm, seed, path in models:
        todo = [t for t in args.steps if (arm, seed, t) not in done]
        if not todo:
            continue
        loaded = load_model(arm, path)
        for steps in todo:
            num = args.teacher_num if arm == "teacher" and args.teacher_num else args.num
            ns = SimpleNamespace(num=num, batch_size=args.batch_size, seed=sample_seed(args, seed), temperature=1.0,
                                 top_p=1.0)
            row = run_setting(loaded, arm if seed is None else f"{arm} s{seed}", "ancestral", steps, ns, None)
            rows.append({**row, "arm": arm, "train_seed": seed, "sample_seed": ns.seed})
            write_json(out / "rows.json", {"args": vars(args), "rows": rows})
    return rows


def summarize(rows: list[dict], seeds: list[int], steps: list[int]) -> tuple[list[dict], str]:
    by = {(r["arm"], r["train_seed"], r["steps"]): r for r in rows}
    teacher = {t: by.get(("teacher", None, t)) for t in steps}
    verdicts, lines = [], list(EFFECT_HEADER)
    top = max(steps)
    for p in PROTOCOLS:
        for t in steps:
            stud = [by.get((p, s, t)) for s in seeds]
            if teacher.get(top) and all(stud):
                v, text = nll_effect_row(f"student ({p}) at T={t} vs teacher at {top}",
                                         f"{p} T={t} − teacher T={top}", [(x, teacher[top]) for x in stud],
                                         "student better", "student worse")
                verdicts.append(v), lines.append(text)
            if teacher.get(t) and all(stud) and t != top:
                v, text = nll_effect_row(f"distillation gain at T={t} ({p})", f"{p} T={t} − teacher T={t}",
                                [(x, teacher[t]) for x in stud], "student better", "student worse")
                verdicts.append(v), lines.append(text)
    for t in steps:
        pairs = [(by.get(("official", s, t)), by.get(("paradistill", s, t))) for s in seeds]
        if all(a and b for a, b in pairs):
            v, text = nll_effect_row(f"protocol at T={t}", f"official − ours, T={t}", pairs, "official better",
                                     "ours better")
            verdicts.append(v), lines.append(text)
    lines += ["", "Intervals of effects against the teacher also hold the teacher's own sampling error (one evaluation "
              "shared by every seed, added in quadrature to the half-width); protocol effects have no shared "
              "reference.",
              FLOOR_NOTE, "", *rows_table(rows, "steps", "T")]
    return verdicts, "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=positive_int, nargs="+", default=[8, 16, 64],
                    help="sampling steps T (the largest is the teacher's reference)")
    ap.add_argument("--teacher-num", type=positive_int, default=None,
                    help="samples of the teacher per T (default --num): "
                    "one teacher evaluation is shared by every seed, so its sampling error enters every effect; "
                    "more teacher samples narrow the intervals")
    add_study_arguments(ap, "runs/sdtt-bases", "results/sdtt/on_bases")
    args = ap.parse_args(argv)
    return run_study(args, evaluate, lambda rows: summarize(rows, args.seeds, sorted(args.steps)))


if __name__ == "__main__":
    raise SystemExit(main())
