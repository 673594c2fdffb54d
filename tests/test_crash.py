"""Crash safety (issue #12): SIGKILL a training run at random points, including inside a checkpoint write,
resume, and end with weights bit-identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from paradistill.checkpoint import resolve_checkpoint

from paradistill.loader import load_checkpoint

pytestmark = pytest.mark.slow

OVERRIDES = ["data.seq_len=16", "data.num_tokens=20000", "model.dim=32", "model.n_layers=1", "model.n_heads=2",
             "train.max_steps=40", "train.batch_size=8", "train.checkpoint_every=4", "train.eval_every=0",
             "train.log_every=1", "train.keep_checkpoints=2"]


def command(run_dir: Path, kind: str = "mdlm") -> list[str]:
    """Start the run, or --resume it once it has started (--resume into an empty --out is refused)."""
    resume = ["--resume"] if run_dir.is_dir() and any(run_dir.iterdir()) else []
    return [sys.executable, "-m", "paradistill.cli", "--threads", "1", "train", kind, "--out", str(run_dir),
            *resume, *OVERRIDES]


def env(tmp_path: Path, delay: float | None = None) -> dict[str, str]:
    e = dict(os.environ, PARADISTILL_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    if delay:
        e["PARADISTILL_FAULT_CKPT_DELAY"] = str(delay)
    return e


def last_step(run_dir: Path) -> int:
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        return max(json.loads(line)["step"] for line in lines if line)
    except (OSError, ValueError):
        return 0


def kill_when(proc: subprocess.Popen, condition, timeout: float = 120) -> bool:
    start = time.time()
    while time.time() - start < timeout:
        if proc.poll() is not None:
            return False
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("the run neither finished nor reached the kill point")


def final_weights(run_dir: Path):
    ckpt = resolve_checkpoint(run_dir)
    assert json.loads((run_dir / "latest.json").read_text())["final"]
    return load_file(str(ckpt / "model.safetensors")), load_file(str(ckpt / "ema.safetensors"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    subprocess.run(command(tmp / "run"), env=env(tmp), check=True, capture_output=True)
    return final_weights(tmp / "run")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_during_training_then_resume_is_bit_identical(tmp_path, reference, seed):
    rng = random.Random(seed)
    run_dir = tmp_path / "run"
    kills = 0
    for attempt in range(2):  # killed twice at random steps, then run to the end
        target = rng.randint(3 + 12 * attempt, 12 + 12 * attempt)
        proc = subprocess.Popen(command(run_dir), env=env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        kills += kill_when(proc, lambda: last_step(run_dir) >= target)
        if (run_dir / "latest.json").exists():
            load_checkpoint(run_dir)  # the latest checkpoint always loads
    assert kills >= 1
    subprocess.run(command(run_dir), env=env(tmp_path), check=True, capture_output=True)
    weights, ema = final_weights(run_dir)
    for name, value in reference[0].items():
        assert (weights[name] == value).all(), name
    for name, value in reference[1].items():
        assert (ema[name] == value).all(), name


def test_sigkill_inside_checkpoint_write_keeps_previous(tmp_path, reference):
    run_dir = tmp_path / "run"
    # first checkpoint written normally, then a slow write that is killed half-way
    proc = subprocess.Popen(command(run_dir), env=env(tmp_path, delay=1.5), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    folder = run_dir / "checkpoints"
    seen_complete = lambda: any(folder.glob("step_*")) and any(folder.glob(".step_*.tmp-*"))  # noqa: E731
    assert kill_when(proc, seen_complete)
    assert any(folder.glob(".step_*.tmp-*"))  # the kill landed inside a write
    loaded = load_checkpoint(run_dir)
    assert loaded.path.name.startswith("step_")
    subprocess.run(command(run_dir), env=env(tmp_path), check=True, capture_output=True)
    assert not any(folder.glob(".step_*"))  # partial writes cleaned up
    weights, _ = final_weights(run_dir)
    for name, value in reference[0].items():
        assert (weights[name] == value).all(), name
