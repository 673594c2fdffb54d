"""A small resumable stage runner (used by `paradistill quickstart`).

Each stage is a top-level function `fn(ctx: dict) -> dict` with dependencies and a config. Its output JSON is
written atomically to `OUT/stages/<name>.json` with a fingerprint of (name, config, dependency fingerprints);
re-running skips every stage whose fingerprint matches, so an interrupted run resumes from the last finished
stage. Independent stages run side by side in worker processes (one torch thread each), which on a 2-core
machine trains two small models at once about twice as fast as one after the other.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import UserError
from .io import atomic_write_text


@dataclass
class Stage:
    name: str
    fn: Callable[[dict[str, Any]], dict[str, Any]]
    deps: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    minutes: float = 1.0  # expected duration, for the ETA


def fingerprint(stage: Stage, dep_prints: list[str]) -> str:
    blob = json.dumps({"name": stage.name, "config": stage.config, "deps": dep_prints}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _run_stage(fn, ctx: dict[str, Any], log_path: str, threads: int) -> dict[str, Any]:
    """Worker entry: one torch thread, output to the stage's log file."""
    import torch

    torch.set_num_threads(threads)
    with open(log_path, "a") as log:
        sys.stdout = sys.stderr = log
        try:
            return {"ok": True, "outputs": fn(ctx)}
        except BaseException as e:  # reported to the parent with its traceback
            traceback.print_exc()
            return {"ok": False, "error": f"{type(e).__name__}: {e}", "user_error": isinstance(e, UserError)}


class Pipeline:
    def __init__(self, out: Path, stages: list[Stage], ctx: dict[str, Any], workers: int = 2,
                 threads_per_worker: int = 1, echo: Callable[[str], None] = print):
        self.out, self.stages, self.ctx = Path(out), {s.name: s for s in stages}, ctx
        self.workers, self.threads, self.echo = workers, threads_per_worker, echo
        (self.out / "stages").mkdir(parents=True, exist_ok=True)
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        for s in stages:
            missing = [d for d in s.deps if d not in self.stages]
            if missing:
                raise ValueError(f"stage {s.name} depends on unknown stages {missing}")

    def _record(self, name: str) -> dict[str, Any] | None:
        path = self.out / "stages" / f"{name}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def _print(self, name: str, prints: dict[str, str]) -> str:
        return fingerprint(self.stages[name], [prints[d] for d in self.stages[name].deps])

    def run(self) -> dict[str, dict[str, Any]]:
        started = time.perf_counter()
        prints: dict[str, str] = {}
        done: dict[str, dict[str, Any]] = {}
        pending = list(self.stages)
        running: dict[Any, tuple[str, float]] = {}
        total = sum(s.minutes for s in self.stages.values())
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx) as pool:
            while pending or running:
                for name in list(pending):
                    stage = self.stages[name]
                    if not all(d in done for d in stage.deps):
                        continue
                    prints[name] = self._print(name, prints)
                    record = self._record(name)
                    if record and record.get("fingerprint") == prints[name]:
                        done[name] = record["outputs"]
                        pending.remove(name)
                        self.echo(f"[skip] {name}: finished earlier (fingerprint {prints[name]})")
                        continue
                    if len(running) >= self.workers:
                        break
                    stage_ctx = {**self.ctx, "out": str(self.out), "stage": name, "inputs": {d: done[d] for d in stage.deps}}
                    log = self.out / "logs" / f"{name}.log"
                    future = pool.submit(_run_stage, stage.fn, stage_ctx, str(log), self.threads)
                    running[future] = (name, time.perf_counter())
                    pending.remove(name)
                    left = sum(self.stages[n].minutes for n in pending) + sum(self.stages[n].minutes for n, _ in running.values())
                    self.echo(f"[start] {name} (~{stage.minutes:.1f} min; log {log}) | elapsed "
                              f"{_fmt(time.perf_counter() - started)}, about {left / max(self.workers, 1):.1f} of "
                              f"{total / max(self.workers, 1):.1f} min of work left")
                if not running:
                    if pending:
                        raise RuntimeError(f"stages {pending} cannot run: their dependencies failed")
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    name, t0 = running.pop(future)
                    result = future.result()
                    if not result["ok"]:
                        msg = f"stage '{name}' failed: {result['error']} (see {self.out / 'logs' / (name + '.log')})"
                        if result.get("user_error"):
                            raise UserError(msg)
                        raise RuntimeError(msg)
                    seconds = time.perf_counter() - t0
                    done[name] = result["outputs"]
                    atomic_write_text(self.out / "stages" / f"{name}.json", json.dumps(
                        {"fingerprint": prints[name], "seconds": seconds, "outputs": result["outputs"]}, indent=2))
                    self.echo(f"[done] {name} in {_fmt(seconds)} | total {_fmt(time.perf_counter() - started)}")
        return done


def _fmt(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def worker_count() -> int:
    return max(1, min(2, os.cpu_count() or 1))
