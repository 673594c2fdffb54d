"""Validation NELBO ordering AR <= BD3-LM(B=4) <= BD3-LM(B=16) <= MDLM on the built-in corpus, same budget.

    PARADISTILL_CACHE=.cache/data OMP_NUM_THREADS=1 .venv/bin/python -m experiments.bd3lm.nelbo_ordering --stop-step 300

Trains `paradistill train bd3lm --block-size B` with the unchanged `tiny` recipe (the same max_steps, batch,
learning-rate schedule, seed and validation protocol as runs/base/ar and runs/base/mdlm) into runs/bd3lm/bB.
With `--stop-step S < max_steps` each run is stopped right after its step-S validation and checkpoint (the
learning-rate schedule up to S is the full-budget one, and `--resume` continues it later), and every model is
compared at step S; the base runs' validation losses at S are read from their metrics.jsonl. A run that already
reached S is not retrained. Writes results/bd3lm_ordering/{ordering.json, table.md, COMMAND.md}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from experiments.common.output import write_command, write_text
from experiments.common.cli import positive_int

ROOT = Path(__file__).resolve().parents[2]  # the repository root


def val_losses(run: Path) -> dict[int, float]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind") == "val":
            out[int(rec["step"])] = float(rec["val_loss"])
    return out


def latest_step(run: Path) -> int:
    path = run / "latest.json"
    return int(json.loads(path.read_text()).get("step", 0)) if path.is_file() else 0


def reached(run: Path, stop: int) -> bool:
    return stop in val_losses(run) and latest_step(run) >= stop


def launch(block: int, run: Path, threads: int) -> subprocess.Popen:
    """`paradistill --threads T train bd3lm --block-size B --out RUN [--resume]`, through the Python API."""
    resume = (run / "latest.json").is_file()
    code = ("from paradistill import api; "
            f"api.train_model('bd3lm', api.load_recipe('tiny', ['bd3lm.block_size={block}', 'train.max_steps=1200']), {str(run)!r}, "
            f"resume={resume}, threads={threads})")
    cmd = [sys.executable, "-c", code]
    run.mkdir(parents=True, exist_ok=True)
    log = open(run.parent / f"b{block}.log", "a")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def train_until(runs: dict[int, Path], stop: int, threads: int) -> dict[int, float]:
    """Train (or resume) BD3-LM(B) for every block size concurrently until the step-`stop` validation and
    checkpoint exist; each child is stopped (by its own pid) once it has them. Returns seconds per block."""
    start = time.perf_counter()
    procs = {b: launch(b, run, threads) for b, run in runs.items() if not reached(run, stop)}
    seconds = {b: 0.0 for b in runs}
    while procs:
        time.sleep(2)
        for b, proc in list(procs.items()):
            if reached(runs[b], stop) and proc.poll() is None:
                proc.terminate()  # the step-`stop` checkpoint is complete (atomic writes)
            if proc.poll() is not None or reached(runs[b], stop):
                proc.wait()
                seconds[b] = time.perf_counter() - start
                del procs[b]
    for b, run in runs.items():
        if stop not in val_losses(run):
            raise SystemExit(f"BD3-LM(B={b}) stopped before its step-{stop} validation: see {run.parent}/b{b}.log")
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stop-step", type=positive_int, default=300, help="compare at this step (a validation step of the base runs)")
    p.add_argument("--blocks", type=positive_int, nargs="+", default=[4, 16])
    p.add_argument("--base", default="runs/base", help="folder with the ar/ and mdlm/ base runs")
    p.add_argument("--runs", default="runs/bd3lm")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--out", default="results/bd3lm_ordering")
    args = p.parse_args(argv)
    base, runs, stop = ROOT / args.base, ROOT / args.runs, args.stop_step
    seconds = train_until({b: runs / f"b{b}" for b in args.blocks}, stop, args.threads)
    models = {"ar": base / "ar", **{f"bd3lm_b{b}": runs / f"b{b}" for b in args.blocks}, "mdlm": base / "mdlm"}
    curves = {name: val_losses(run) for name, run in models.items()}
    missing = [name for name, c in curves.items() if stop not in c]
    if missing:
        raise SystemExit(f"no step-{stop} validation for {missing}: wait for those runs or pick another --stop-step")
    final = {name: curves[name][stop] for name in models}
    order = list(models)
    holds = all(final[a] <= final[b] for a, b in zip(order, order[1:]))
    config = json.loads((runs / f"b{args.blocks[0]}" / "train_config.json").read_text())["train"]
    result = {"step": stop, "val_nelbo_per_token": final, "val_ppl_bound": {k: math.exp(v) for k, v in final.items()},
              "ordering": " <= ".join(order), "ordering_holds": holds, "curves": curves,
              "train_seconds_this_invocation": seconds, "runs": {k: str(v.relative_to(ROOT)) for k, v in models.items()},
              "train_config": config,
              "note": "AR: exact NLL per token; diffusion models: NELBO per token (an upper bound), full t range, "
                      "EMA weights, the first eval_batches*batch_size validation rows, positions 1..L-1."}
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "ordering.json", json.dumps(result, indent=2) + "\n")
    steps = sorted({s for c in curves.values() for s in c})
    head = "| model | " + " | ".join(f"step {s}" for s in steps) + " |"
    table = [f"**Verdict: the ordering {' <= '.join(order)} at step {stop} {'holds' if holds else 'does not hold'}.**",
             "", f"Validation NLL (AR) / NELBO (diffusion) per token, tiny recipe (batch {config['batch_size']}, "
             f"lr {config['lr']}, max_steps {config['max_steps']}); compared at step {stop}.", "", head,
             "|---" * (len(steps) + 1) + "|"]
    for name in order:
        table.append(f"| {name} | " + " | ".join(f"{curves[name][s]:.4f}" if s in curves[name] else "-" for s in steps)
                     + " |")
    write_text(out / "table.md", "\n".join(table) + "\n")
    write_command(out, "experiments.bd3lm.nelbo_ordering", argv if argv is not None else sys.argv[1:],
                  env="PARADISTILL_CACHE=.cache/data OMP_NUM_THREADS=1", note="; retrains only missing steps")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
