"""Train several MDLM (and one BD3-LM) arms side by side on one GPU under a wall-clock deadline (a lent
accelerator is held for minutes, not hours): every arm is the `longer.sh` model (tiny recipe, from builtin:ar,
unshifted, one cosine schedule) with its own steps, batch size, learning rate, data budget and precision. The arms
share the GPU as separate processes. Every 15 s the rates are read from each run's metrics.jsonl; when the arm of
highest priority would miss the deadline, the lowest-priority arm still running is stopped (its checkpoints stay),
until it would not. At the deadline whatever still runs is stopped. Writes OUT/arms.json: per arm the exact
command, whether it finished, its last step, steps/s and last validation NELBO.

    python -m experiments.bases.gpu_arms --out runs/gpu --deadline 450 [--pd 'python3 -m paradistill.cli']

A finished arm is an ordinary run folder: `experiments.bases.compare --run NAME=OUT/NAME` compares it with the
shipped builtin:mdlm on one validation set, and `experiments.bases.pack` ships it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import time
from pathlib import Path

from paradistill.io import atomic_write_json

# name -> (priority: lower is kept longer, its steps, model kind and options, recipe overrides beyond the common ones).
# Steps are sized to finish in ~7 minutes at >= 50 steps/s, the larger batches first: at batch 512, 15000 steps see
# 5.5x the sequences today's builtin:mdlm was trained on (11000 x 64 + 5500 x 128; results/bases/longer, then
# results/bases/continued). Batch 512 in float32
# would be bound by the GPU's fp32 matrix rate: bf16-mixed there (float32 master weights).
COMMON = ["train.eval_every=500", "train.checkpoint_every=500"]
ARMS = {
    "b512": (0, 15000, ["mdlm"], ["train.batch_size=512", "train.lr=0.002", "data.num_tokens=64000000",
                                  "train.precision=bf16-mixed"]),
    "b128": (1, 20000, ["mdlm"], ["train.batch_size=128", "train.lr=0.002", "data.num_tokens=32000000",
                                  "train.precision=32-true"]),
    "b32": (2, 30000, ["mdlm"], ["train.lr=0.001", "data.num_tokens=16000000", "train.precision=32-true"]),  # longer.sh
    # BD3-LM B = 16 (today's builtin:bd3lm-b16 had 600 steps): the b128 settings, from the same AR
    "bd3lm-b16": (3, 20000, ["bd3lm", "--block-size", "16"], ["train.batch_size=128", "train.lr=0.002",
                                                              "data.num_tokens=32000000", "train.precision=32-true"]),
}


def max_steps(name: str, override: int | None = None) -> int:
    """The arm's step count: its own, or `override` (for trials)."""
    return override or ARMS[name][1]


def command(pd: str, out: Path, name: str, steps: int | None = None) -> list[str]:
    """The arm's training command (`steps`: override its step count, for trials)."""
    _, _, kind, overrides = ARMS[name]
    steps = max_steps(name, steps)
    return [*shlex.split(pd), "--threads", "1", "train", *kind, "--recipe", "tiny", "--init-from-ar", "builtin:ar",
            "--out", str(out / name), f"train.max_steps={steps}", *COMMON, *overrides]


def progress(run: Path) -> tuple[int, float | None, float | None]:
    """(last logged step, its elapsed seconds, last validation loss) of a run folder."""
    step, elapsed, val = 0, None, None
    path = run / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("kind") == "train":
                step, elapsed = rec["step"], rec.get("elapsed_s")
            elif rec.get("kind") == "val":
                val = rec["val_loss"]
    return step, elapsed, val


def finished(run: Path) -> bool:
    latest = run / "latest.json"
    return latest.is_file() and bool(json.loads(latest.read_text()).get("final"))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default="runs/gpu", help="folder of the run folders (default runs/gpu)")
    ap.add_argument("--deadline", type=float, default=450, help="seconds from start until every arm is stopped")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {','.join(ARMS)}")
    ap.add_argument("--pd", default="python3 -m paradistill.cli", help="the paradistill command")
    ap.add_argument("--steps", type=int, default=None, help="train.max_steps of every arm (default: each arm's own)")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.arms.split(",") if n.strip()]
    unknown = [n for n in names if n not in ARMS]
    if unknown or not names:
        ap.error(f"--arms {args.arms}: unknown arm {unknown[0] if unknown else ''!r}; choose from {','.join(ARMS)}")
    names.sort(key=lambda n: ARMS[n][0])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    procs, logs = {}, {}
    for name in names:
        cmd = command(args.pd, out, name, args.steps)
        print(f"[arms] start {name}: {shlex.join(cmd)}", flush=True)
        logs[name] = open(out / f"{name}.log", "w")
        procs[name] = subprocess.Popen(cmd, stdout=logs[name], stderr=subprocess.STDOUT)
    stopped: dict[str, str] = {}
    while any(p.poll() is None for p in procs.values()):
        time.sleep(15)
        now = time.monotonic() - start
        steps, rates = {}, {}
        for name in names:
            step, elapsed, val = progress(out / name)
            steps[name], rates[name] = step, step / elapsed if elapsed else None
            state = "done" if procs[name].poll() is not None else "running"
            print(f"[arms] {now:5.0f}s {name}: step {step} ({rates[name] or 0:.1f} steps/s) val {val} {state}",
                  flush=True)
        if now >= args.deadline:
            for name, p in procs.items():
                if p.poll() is None:
                    p.terminate()
                    stopped[name] = f"deadline {args.deadline:.0f}s"
            break
        running = [n for n in names if procs[n].poll() is None]
        lead = running[0] if running else None
        if lead and rates.get(lead) and now > 60 and len(running) > 1:
            eta = now + (max_steps(lead, args.steps) - steps[lead]) / rates[lead]
            if eta > args.deadline:
                last = running[-1]
                procs[last].terminate()
                stopped[last] = f"at {now:.0f}s: {lead} would end at {eta:.0f}s"
                print(f"[arms] stop {last} ({stopped[last]})", flush=True)
    for name, p in procs.items():
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        logs[name].close()
    summary = {}
    for name in names:
        step, elapsed, val = progress(out / name)
        summary[name] = {"command": shlex.join(command(args.pd, out, name, args.steps)),
                         "finished": finished(out / name),
                         "step": step, "steps_per_s": step / elapsed if elapsed else None, "last_val_loss": val,
                         "stopped": stopped.get(name), "returncode": procs[name].returncode}
    summary["wall_s"] = time.monotonic() - start
    atomic_write_json(out / "arms.json", summary, indent=2)
    print(json.dumps(summary, indent=2), flush=True)


if __name__ == "__main__":
    main()
