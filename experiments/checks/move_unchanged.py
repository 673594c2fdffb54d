"""Does the experiments/ package give the same numbers as the scripts/ it replaced (issue #23)?

Runs each old script (from git commit --old-commit, extracted with `git archive`) and its new module on the same
inputs with one thread, both in this process (as `python FILE` and `python -m MODULE` would), and compares their JSON outputs value by value (float equality, no tolerance), leaving
out only wall-clock fields and the output paths in `args`. The inputs are small runs trained in seconds by
--fixtures (the trained runs of the reported results are not in the repository) and the committed result JSONs of
the old commit (for the table renderers). The three old exact scorers are also compared in-process with the shared
one on the same token sets. Writes --out/{move_check.json,table.md}; the verdict opens the table.

    python -m experiments.checks.move_unchanged --fixtures /tmp/mv/runs --work /tmp/mv/check --out results/experiments_move
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import math
import os
import runpy
import shlex
import subprocess
import sys
import tarfile
import traceback
from pathlib import Path

from experiments.common.output import write_json, write_text

ROOT = Path(__file__).resolve().parents[2]
# wall-clock or machine-load fields, and the output locations (which differ between the two runs by design)
IGNORED = {"seconds", "cpu_seconds", "peak_rss_increase_mib", "rss_before_mib", "median_s", "times_s", "all_s",
           "speedup", "json", "out", "child_out", "png", "seconds_total", "checkpoint",
           "file"}  # file: an input path, recorded by the perfect-student table


def cases(fx: str, old_results: str) -> list[dict]:
    """(name, old script, new module, arguments, outputs) for every compared experiment; {o} = output folder."""
    gd = f"{old_results}/gumbel_distillation"
    sd = f"{old_results}/sdtt"
    return [
        dict(name="noise on support", old="gumbel_noise_info", new="gumbel.noise_on_support",
             args="--num 32 --json {o}/r.json", files=["r.json", "r.md"]),
        dict(name="sample quality (MDLM + GD student, ancestral + first-hitting)", old="gumbel_eval",
             new="eval.sample_quality", args=f"--model m={fx}/mdlm --model gd={fx}/gd --steps 4 8 --first-hitting "
             "--num 32 --batch-size 32 --json {o}/r.json", files=["r.json", "r.md"]),
        dict(name="sample quality (--tune, --temperature, block student)", old="gumbel_eval", new="eval.sample_quality",
             args=f"--model bd={fx}/bd3 --tune 0.5 1.0 --temperature 0.8 --steps 1 2 --num 16 --batch-size 16 "
             "--json {o}/r.json", files=["r.json", "r.md"]),
        dict(name="noise map", old="gumbel_noise_map", new="gumbel.noise_map",
             args=f"--model m={fx}/mdlm --model gd={fx}/gd --steps 4 --first-hitting --num 16 --json {{o}}/r.json",
             files=["r.json", "r.md"]),
        dict(name="map depth (coupling, depth profile, demanded links)", old="gumbel_depth", new="gumbel.map_depth",
             args=f"--num 8 --model m={fx}/mdlm --model gd={fx}/gd --model bd={fx}/bd3 --coupling-num 64 "
             "--coupling-depth 6 --demand-steps 4 --depths 0 1 --json {o}/r.json", files=["r.json", "r.md"]),
        dict(name="learning curve", old="gumbel_learning_curve", new="gumbel.learning_curve",
             args=f"--run gd={fx}/gd --steps 4 --num 8 --json {{o}}/r.json", files=["r.json", "r.md"]),
        dict(name="untrained noise probe", old="gumbel_skip_probe", new="gumbel.untrained_noise_probe",
             args=f"{fx}/mdlm --rows 64 --betas 0 1 --times 0.5 1.0 --json {{o}}/r.json", files=["r.json", "r.md"]),
        dict(name="entropy-matched frontier (committed inputs)", old="gumbel_frontier", new="eval.entropy_matched",
             args=" ".join(f"{gd}/bd3lm_temp0.{t}.json" for t in (5, 6, 7, 8, 9)) + f" {gd}/bd3lm_skip.json "
             f"{gd}/bd3lm_skip_more_tau.json --series 'BD3-LM, softmax temperature=bd3lm(-temp.*)?' "
             "--series 'GD-BD3LM + skip, noise temperature=gd-bd3lm-skip( tau=.*)?' "
             "--series \"GD-BD3LM (paper's embedding only)=gd-bd3lm\" --panel-title 'T = {{}} steps per block' "
             "--json {o}/r.json", files=["r.json", "r.md"], committed=f"{gd}/frontier_bd3lm.json"),
        dict(name="SDTT round quality", old="sdtt_eval", new="sdtt.round_quality",
             args=f"--teacher {fx}/mdlm --run {fx}/sdtt --teacher-steps 2 4 8 --num 16 --batch-size 16 --judge '' "
             "--json {o}/r.json", files=["r.json"]),
        dict(name="SDTT headroom", old="sdtt_headroom", new="sdtt.headroom",
             args=f"--run {fx}/sdtt --teacher {fx}/mdlm --batches 1 --draws 4 --json {{o}}/r.json", files=["r.json"]),
        dict(name="SDTT round objective", old="sdtt_val_kl", new="sdtt.round_objective",
             args=f"--run {fx}/sdtt --teacher {fx}/mdlm --eval-batches 1 --json {{o}}/r.json", files=["r.json"]),
        dict(name="SDTT perfect student", old="sdtt_oracle", new="sdtt.perfect_student",
             args=f"--teacher {fx}/mdlm --steps 2 --draws 2 --num 8 --batch-size 8 --json {{o}}/r.json",
             files=["r.json"]),
        dict(name="SDTT perfect-student table (committed inputs)", old="sdtt_oracle", new="sdtt.perfect_student",
             args="--table " + " ".join(f"{sd}/oracle_{n}.json" for n in ("T32", "T16", "T16_draws4", "T16_rounds2",
                                                                           "T8")) + " --json {o}/r.json",
             files=["r.json", "r.md"], committed=f"{sd}/oracle.json"),
        dict(name="SDTT tables (committed inputs)", old="sdtt_table", new="sdtt.table",
             args=" ".join(f"{sd}/{n}.json" for n in ("gd-mdlm", "headroom_gd-mdlm", "headroom_mdlm", "mdlm",
                                                      "val_kl_gd-mdlm", "val_kl_mdlm")) + " --out {o}/table.md",
             files=["table.md"]),
        dict(name="Gumbel extraction benchmark (V = 4096, 2 x 32)", old="bench_gumbel_extraction",
             new="bench.gumbel_extraction", args="--vocab 4096 --batch 2 --length 32 --chunk 8 --topk 8 --out {o}",
             files=["bench.json"]),
        dict(name="BD3-LM cache benchmark (L = 32)", old="bench_bd3lm_cache", new="bench.bd3lm_cache",
             args="--length 32 --block 8 --steps 2 --batch 1 --reps 1 --out {o}", files=["bench.json"]),
    ]


def run(target: str, argv: str, cwd: Path, log: Path, old: bool) -> int:
    """Run an old script (a file, its folder on sys.path as it was run) or a new module (`python -m`) in this
    process with `argv` (shell syntax) from `cwd`, output to `log`; torch is imported once for every case."""
    saved = sys.argv[:], sys.path[:], os.getcwd()
    with open(log, "w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        try:
            os.chdir(cwd)
            sys.argv = [target, *shlex.split(argv)]
            if old:
                sys.path.insert(0, str(Path(target).parent))
                runpy.run_path(target, run_name="__main__")
            else:
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            return 0
        except SystemExit as done:
            return 0 if done.code in (None, 0) else 1
        except Exception:  # noqa: BLE001 - a crash is a result of the check, written to the log
            traceback.print_exc()
            return 1
        finally:
            sys.argv, sys.path[:] = saved[0], saved[1]
            os.chdir(saved[2])


def differences(a, b, path: str = "") -> list[str]:
    """Paths where two JSON values differ (exact equality; IGNORED keys skipped)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only in one" for k in sorted(set(a) ^ set(b)) if k not in IGNORED]
        for k in sorted(set(a) & set(b)):
            if k not in IGNORED:
                out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    same = a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    return [] if same else [f"{path}: {a!r} vs {b!r}"]


def compare_files(old: Path, new: Path, name: str) -> list[str]:
    if not old.is_file() or not new.is_file():
        return [f"{name}: missing ({old.is_file()=}, {new.is_file()=})"]
    if name.endswith(".json"):
        return differences(json.loads(old.read_text()), json.loads(new.read_text()))
    return [] if old.read_text() == new.read_text() else [f"{name}: text differs"]


def extract(commit: str, paths: list[str], dest: Path) -> None:
    """`git archive COMMIT PATHS` unpacked into dest (the old scripts and the committed result inputs)."""
    data = subprocess.run(["git", "archive", commit, *paths], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")


def scorer_rows(old_tree: Path, fixtures: str) -> list[dict]:
    """The three old score functions against experiments.common.scoring on the same token sets, field by field."""
    import torch

    from experiments.common.scoring import ADJUST_FIELDS, GUMBEL_FIELDS, SDTT_FIELDS, exact_score
    from paradistill import api
    from paradistill.data.grammar import StoryGrammar

    def old(name):
        spec = importlib.util.spec_from_file_location(f"old_{name}", old_tree / "scripts" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.score

    grammar = StoryGrammar()
    sets = {"generator, 128 x 64": grammar.sample(128, 64, torch.Generator().manual_seed(0)),
            "generator, 100 x 64": grammar.sample(100, 64, torch.Generator().manual_seed(1))}
    loaded = api.load(f"{fixtures}/mdlm")
    sets["30-step MDLM, 128 x 64, T = 8"] = api.generate(loaded, 128, steps=8, batch_size=64, seed=0,
                                                          progress=False).tokens
    rows = []
    for set_name, tokens in sets.items():
        new = exact_score(tokens)
        for script, fields in (("gumbel_eval", GUMBEL_FIELDS), ("sdtt_eval", SDTT_FIELDS),
                               ("adjust_eval", ADJUST_FIELDS)):
            was, now = old(script)(tokens), new.row(fields)
            for f in fields:
                a, b = was[f], now[f]
                rows.append({"tokens": set_name, "old": script, "field": f, "old_value": a, "new_value": b,
                             "identical": a == b, "relative_difference": abs(a - b) / abs(a) if a else abs(b)})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old-commit", default="d2fb855", help="the commit whose scripts/ the package replaced")
    ap.add_argument("--fixtures", required=True, help="folder with the small runs mdlm, gd, bd3, sdtt "
                    "(see COMMAND.md of results/experiments_move for how to train them in ~2 CPU-minutes)")
    ap.add_argument("--work", required=True, help="scratch folder for the old tree and both outputs")
    ap.add_argument("--only", default=None, help="run only the cases whose name contains this text")
    ap.add_argument("--out", default="results/experiments_move")
    args = ap.parse_args()
    fx, work = str(Path(args.fixtures).resolve()), Path(args.work).resolve()
    for run_name in ("mdlm", "gd", "bd3", "sdtt"):
        if not (Path(fx) / run_name / "latest.json").is_file():
            raise SystemExit(f"--fixtures {fx}: no {run_name}/latest.json; train the fixtures first (COMMAND.md)")
    old_tree = work / "old"
    extract(args.old_commit, ["scripts", "results/gumbel_distillation", "results/sdtt"], old_tree)
    rows = []
    for case in cases(fx, str(old_tree / "results")):
        if args.only and args.only not in case["name"]:
            continue
        slug = "".join(c if c.isalnum() else "_" for c in case["name"])[:40]
        o_old, o_new = work / "out" / slug / "old", work / "out" / slug / "new"
        o_old.mkdir(parents=True, exist_ok=True)
        o_new.mkdir(parents=True, exist_ok=True)
        rc_old = run(str(old_tree / "scripts" / f"{case['old']}.py"), case["args"].format(o=o_old), old_tree,
                     o_old / "log.txt", old=True)
        rc_new = run(f"experiments.{case['new']}", case["args"].format(o=o_new), ROOT, o_new / "log.txt", old=False)
        diffs = [f"exit codes {rc_old} / {rc_new}"] if rc_old or rc_new else []
        for name in case["files"]:
            diffs += [f"{name}: {d}" for d in compare_files(o_old / name, o_new / name, name)]
        if case.get("committed"):  # the committed output itself, regenerated by the new module
            diffs += [f"committed: {d}" for d in compare_files(Path(case["committed"]), o_new / "r.json", ".json")]
        rows.append({"case": case["name"], "old": f"scripts/{case['old']}.py", "new": f"experiments.{case['new']}",
                     "args": case["args"], "identical": not diffs, "differences": diffs[:20]})
        print(f"{'IDENTICAL' if not diffs else 'DIFFERS  '} {case['name']}" + "".join(f"\n    {d}" for d in diffs[:5]),
              flush=True)
    previous = Path(args.out) / "move_check.json"
    if args.only and previous.is_file():  # rerun of some cases: keep the other cases and the scorer comparison
        kept = json.loads(previous.read_text())
        rows = [r for r in kept["cases"] if args.only not in r["case"]] + rows
        scorer = kept["scorer"]
    else:
        scorer = scorer_rows(old_tree, fx)
    write_json(previous, {"old_commit": args.old_commit, "cases": rows, "scorer": scorer})
    write_text(Path(args.out) / "table.md", render(rows, scorer, args.old_commit))
    return 0


def render(rows: list[dict], scorer: list[dict], commit: str) -> str:
    same = sum(r["identical"] for r in rows)
    exact = [r for r in scorer if r["identical"]]
    worst = max((r["relative_difference"] for r in scorer), default=0.0)
    lines = [f"**Verdict: {same} of {len(rows)} experiments give bit-identical JSON after the move** (old scripts of "
             f"{commit} vs the experiments package, same inputs, one thread; wall-clock fields left out); the shared "
             f"scorer equals the three old ones bit for bit in {len(exact)} of {len(scorer)} fields, the rest within "
             f"a relative {worst:.1e} (see below).", "",
             "| experiment | old script | new module | output |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | `{r['old']}` | `{r['new']}` | "
                     + ("identical" if r["identical"] else "differs: " + "; ".join(r["differences"][:3])) + " |")
    if scorer:
        lines += ["", "Shared scorer (experiments/common/scoring.py) against the old score functions, fields that are "
                  "not bit-identical:", "", "| tokens | old function | field | old | new | relative difference |",
                  "|---|---|---|---:|---:|---:|"]
        lines += [f"| {r['tokens']} | {r['old']}.score | {r['field']} | {r['old_value']!r} | {r['new_value']!r} | "
                  f"{r['relative_difference']:.1e} |" for r in scorer if not r["identical"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
