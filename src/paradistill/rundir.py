"""Run directories: one writer at a time, no silent mixing of two runs (bottom layer: imports errors and io).

- `RunLock(run_dir)`: `RUN/.lock` is created with O_EXCL and holds the writer's pid, host, process start time and
  command. A second writer is refused with a message naming the holder. A lock whose process is gone (killed, or
  its pid now belongs to another process) is reported on stderr and taken over, so SIGKILL + re-run still
  resumes; a lock written on another host cannot be checked and is refused with the fix (delete the file).
- `check_new_run` / `check_resume`: `train` without --resume into a directory that already holds a run, and
  --resume into a directory that holds none (a mistyped --out), are refused before any work.
- `check_resume_matches`: the checkpoint being resumed must be of the same kind, recipe and model architecture.
- `check_not_input`: a distillation's --out must not be its teacher's / base's run directory.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from .errors import UserError
from .io import writable_location

LOCK_NAME = ".lock"
RUN_MARKERS = ("latest.json", "train_config.json", "metrics.jsonl", "checkpoints")


def _proc_start(pid: int) -> str | None:
    """The kernel's start time of process `pid` (clock ticks since boot), or None if unknown / gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def lock_is_stale(info: dict[str, Any]) -> bool | None:
    """True when the lock's process is gone, False when it runs, None when it cannot be told (other host)."""
    if info.get("host") != socket.gethostname():
        return None
    pid = int(info.get("pid", -1))
    if pid <= 0 or not _alive(pid):
        return True
    recorded, now = info.get("proc_start"), _proc_start(pid)
    return recorded is not None and now is not None and recorded != now  # the pid was reused


def read_lock(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else {}


class RunLock:
    """Exclusive lock on a run directory while a job writes it (use as a context manager)."""

    def __init__(self, run_dir: str | Path, command: str | None = None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.command = command or " ".join(sys.argv[:4])
        self.held = False

    def _create(self) -> bool:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "proc_start": _proc_start(os.getpid()),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": self.command}
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(info))
        return True

    def acquire(self) -> RunLock:
        writable_location(self.run_dir / LOCK_NAME, "run directory")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                self.held = True
                return self
            info = read_lock(self.path)
            if info is None:  # removed meanwhile, or being written right now
                time.sleep(0.05)
                continue
            stale = lock_is_stale(info)
            who = (f"process {info.get('pid')} on {info.get('host')} (started {info.get('started')}: "
                   f"{info.get('command')})")
            if stale is False:
                raise UserError(f"run directory '{self.run_dir}' is in use by {who}: wait for it to finish, or "
                                "choose another --out")
            if stale is None:
                raise UserError(f"run directory '{self.run_dir}' is locked by {who}, which cannot be checked from "
                                f"this host: if no job writes it any more, delete '{self.path}' and re-run")
            # stale: move it aside atomically (only one contender succeeds), then retry
            aside = self.path.with_name(f"{LOCK_NAME}.stale-{uuid.uuid4().hex[:8]}")
            try:
                os.replace(self.path, aside)
            except FileNotFoundError:
                continue
            aside.unlink(missing_ok=True)
            print(f"paradistill: note: '{self.path}' was left by {who}, which is no longer running (killed?); "
                  "taking it over", file=sys.stderr)
        raise UserError(f"could not lock run directory '{self.run_dir}' (another job keeps taking it): retry")

    def release(self) -> None:
        if self.held:
            info = read_lock(self.path)
            if info and info.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holds_run(run_dir: str | Path) -> bool:
    """True when `run_dir` holds (part of) a training run."""
    p = Path(run_dir)
    return p.is_dir() and any((p / m).exists() for m in RUN_MARKERS)


def _latest_step(run_dir: Path) -> str:
    try:
        return f" (step {json.loads((run_dir / 'latest.json').read_text())['step']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def check_new_run(run_dir: str | Path, what: str = "--out") -> None:
    """A fresh run must not land in a directory that holds another run; the folder must be writable."""
    p = Path(run_dir)
    if p.exists() and not p.is_dir():
        raise UserError(f"{what} '{run_dir}' is a file, not a run directory: choose another path")
    if holds_run(p):
        raise UserError(f"{what} '{run_dir}' already holds a training run{_latest_step(p)}: pass --resume to "
                        "continue it, or choose another --out (delete the folder to start over)")
    writable_location(p / LOCK_NAME, what)


def check_resume(run_dir: str | Path, what: str = "--out") -> None:
    """--resume needs something to resume: a missing or empty directory is most likely a mistyped --out."""
    p = Path(run_dir)
    if not p.is_dir() or not any(e.name != LOCK_NAME for e in p.iterdir()):
        raise UserError(f"--resume: {what} '{run_dir}' holds no run to continue: check the path, or drop --resume "
                        "to start a new run")


def check_unlocked(run_dir: str | Path) -> None:
    """Refuse early (before any data work) when a live job holds the run directory's lock."""
    info = read_lock(Path(run_dir) / LOCK_NAME)
    if info is not None and lock_is_stale(info) is False:
        raise UserError(f"run directory '{run_dir}' is in use by process {info.get('pid')} on {info.get('host')} "
                        f"(started {info.get('started')}: {info.get('command')}): wait for it to finish, or choose "
                        "another --out")


def check_train_target(run_dir: str | Path, resume: bool, what: str = "--out", kind: str | None = None,
                       recipe: str | None = None, model: dict[str, Any] | None = None) -> None:
    """Before any work: a new run into a free directory, or --resume of an existing run of this kind / recipe."""
    check_unlocked(run_dir)
    if not resume:
        check_new_run(run_dir, what)
        return
    check_resume(run_dir, what)
    config = latest_config(run_dir)
    if config is not None and kind is not None:
        check_resume_matches(Path(run_dir), config, kind, {"recipe": recipe} if recipe else {}, model or {})


def latest_config(run_dir: str | Path) -> dict[str, Any] | None:
    """config.json of the checkpoint RUN/latest.json names, or None when there is none (yet) or the checkpoint is
    unreadable (the loader reports that with its own message); a corrupt latest.json is a UserError."""
    p = Path(run_dir)
    latest = p / "latest.json"
    if not latest.is_file():
        return None
    try:
        pointer = json.loads(latest.read_text())
        target = p / pointer["path"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"'{latest}' is corrupt ({type(e).__name__}: {e}): it must be an object like "
                        f'{{"path": "checkpoints/step_...", "step": N}}; fix it or pass a checkpoint directory '
                        f"inside '{p}/checkpoints'") from None
    try:
        config = json.loads((target / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def run_dir_of(checkpoint: str | Path) -> Path:
    """The run directory a checkpoint path belongs to (itself when it is a run directory)."""
    p = Path(checkpoint).absolute()
    if p.parent.name == "checkpoints":
        return p.parent.parent
    return p


def check_not_input(out: str | Path, inputs: dict[str, str | Path | None]) -> None:
    """`out` (a run directory written by a distillation) must not be one of its input runs."""
    target = Path(out).absolute().resolve()
    for flag, inp in inputs.items():
        if not inp or str(inp).startswith(("hf:", "builtin")):
            continue
        src = Path(inp).absolute().resolve()
        if target in (src, run_dir_of(src).resolve()):
            raise UserError(f"--out '{out}' is the run directory of {flag} '{inp}': writing there would repoint or "
                            f"overwrite it; choose another --out")


def check_resume_matches(run_dir: Path, config: dict[str, Any], kind: str, method: dict[str, Any],
                         model_cfg: dict[str, Any]) -> None:
    """The checkpoint being resumed (`config`: its config.json) must be the same kind, recipe and architecture."""
    have = config.get("kind")
    if have != kind:
        raise UserError(f"--resume: '{run_dir}' holds a '{have}' run, not '{kind}': resume it with the command that "
                        f"started it, or choose another --out")
    old, new = (config.get("method") or {}).get("recipe"), method.get("recipe")
    if old and new and old != new:
        raise UserError(f"--resume: '{run_dir}' was trained with recipe '{old}', not '{new}': pass --recipe {old}, "
                        "or choose another --out")
    old_model = config.get("model") or {}
    diff = [k for k in sorted(model_cfg) if k in old_model and old_model[k] != model_cfg[k]]
    if diff:
        k = diff[0]
        raise UserError(f"--resume: '{run_dir}' holds a model with model.{k}={old_model[k]!r}, but the recipe now says "
                        f"{model_cfg[k]!r}: drop the model.{k} override, or choose another --out")
