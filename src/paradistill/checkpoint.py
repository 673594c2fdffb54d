"""The checkpoint format (bottom layer: it knows no model kinds). A checkpoint is a directory with `model.safetensors` (+ `ema.safetensors`), `config.json`, `tokenizer/` and,
for training runs, `train_state.pt`. Written into a temporary sibling, fsynced, then renamed into place;
`RUN/latest.json` (replaced atomically) names the newest complete checkpoint. A crash at any point leaves
the previous checkpoint and pointer intact.

Building a model from a checkpoint depends on its kind and lives one layer up (`loader.load_checkpoint`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import from_dict
from .errors import UserError
from .io import atomic_write_text, replace_dir

FORMAT_VERSION = 1


def _fault_delay() -> None:
    """Fault injection for crash tests: PARADISTILL_FAULT_CKPT_DELAY=seconds stalls every checkpoint write
    half-way (after the weights, before the config), so a kill lands inside the write."""
    delay = os.environ.get("PARADISTILL_FAULT_CKPT_DELAY")
    if delay:
        import time

        time.sleep(float(delay))


def _weights(model) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    if getattr(model.cfg, "tie_weights", False):
        state.pop("head.weight", None)  # shared with embed.weight; restored by tying on load
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_checkpoint(path: Path, model, kind: str, tokenizer, method: dict[str, Any] | None = None,
                    ema_weights: dict[str, torch.Tensor] | None = None,
                    train_state: dict[str, Any] | None = None, extra_files: dict[str, Any] | None = None) -> Path:
    """Write a complete checkpoint directory at `path` atomically; returns `path`."""
    from safetensors.torch import save_file

    with replace_dir(path) as tmp:
        save_file(_weights(model), str(tmp / "model.safetensors"))
        _fault_delay()
        if ema_weights is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in ema_weights.items()}, str(tmp / "ema.safetensors"))
        config = {"format_version": FORMAT_VERSION, "kind": kind, "model": asdict(model.cfg),
                  "method": method or {}, "tokenizer_fingerprint": tokenizer.fingerprint() if tokenizer else None}
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        if tokenizer is not None:
            tokenizer.save(tmp / "tokenizer")
        if train_state is not None:
            torch.save(train_state, tmp / "train_state.pt")
        for name, obj in (extra_files or {}).items():
            (tmp / name).write_text(json.dumps(obj, indent=2))
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, or a run directory whose latest.json names one."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"checkpoint '{p}' does not exist: pass a run directory or a checkpoint directory")
    if (p / "config.json").is_file() and (p / "model.safetensors").is_file():
        return p
    latest = p / "latest.json"
    if latest.is_file():
        try:
            pointer = json.loads(latest.read_text())
            target = p / pointer["path"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise UserError(f"'{latest}' is corrupt ({type(e).__name__}: {e}): it must be an object like "
                            f'{{"path": "checkpoints/step_...", "step": N}}; fix it or pass a checkpoint directory '
                            f"inside '{p}/checkpoints'") from None
        if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
            return target
        newest = newest_complete(p)
        if newest is None:
            raise UserError(f"'{latest}' names '{target}', which does not exist: pass a checkpoint directory")
        return newest
    raise UserError(f"'{p}' is not a paradistill checkpoint (no config.json + model.safetensors) "
                    "nor a run directory (no latest.json)")


def read_config(ckpt: Path) -> dict[str, Any]:
    try:
        config = json.loads((ckpt / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"checkpoint config '{ckpt / 'config.json'}' is corrupt ({e}): restore it or use another checkpoint") from None
    if not isinstance(config, dict) or "kind" not in config or "model" not in config:
        raise UserError(f"'{ckpt / 'config.json'}' is not a paradistill checkpoint config (no 'kind'/'model')")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise UserError(f"checkpoint '{ckpt}' has format {config['format_version']}, newer than this paradistill "
                        f"({FORMAT_VERSION}): upgrade paradistill")
    return config


# Keys every checkpoint has written since format 1: a missing one must not silently fall back to a default
# (n_heads, for instance, changes the outputs without changing any tensor shape).
ARCHITECTURE_KEYS = ("vocab_size", "dim", "n_layers", "n_heads", "mlp_ratio", "tie_weights", "time_conditioning",
                     "rope_base", "max_len")


def check_architecture_keys(model: Any, ckpt: Path) -> None:
    if not isinstance(model, dict):
        raise UserError(f"'{ckpt / 'config.json'}': 'model' must be an object of architecture keys")
    missing = [k for k in ARCHITECTURE_KEYS if k not in model]
    if missing:
        raise UserError(f"'{ckpt / 'config.json'}' lacks model.{missing[0]} (missing: {', '.join(missing)}): the "
                        "architecture cannot be guessed; restore the config.json written with these weights")


def load_weights(file: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"weights file '{file}' is truncated or corrupt ({e}): delete this checkpoint and resume "
                        "from an earlier one") from None


@dataclass
class MethodRecord:
    """What a checkpoint records about how it was trained (config.json "method"), read back through this one
    dataclass: its defaults are the only read-back defaults. Method sections stay mappings here; each method reads
    its own through its config class (e.g. `distill.gumbel.saved_gumbel_config`)."""
    seq_len: int = 64  # training row length: the default generation length
    data_mode: str = "aligned"  # aligned | wrap | pad | wrap-mdlm | wrap-raw (PAD is a token only for pad)
    recipe: str | None = None
    keep_bos: bool = True  # position 0 is BOS and is kept fixed by samplers
    block_size: int | None = None  # block-diffusion kinds
    init: str | None = None  # the checkpoint its weights started from
    source: str | None = None  # imported checkpoints: the file they came from
    source_format: str | None = None  # imported checkpoints: the format they were converted from (loading/)
    teacher: str | None = None  # Gumbel Distillation
    student: str | None = None
    base: str | None = None  # ADJUST: the frozen base, its kind and weights fingerprint
    base_kind: str | None = None
    base_fingerprint: str | None = None
    trajectories: str | None = None
    num_trajectories: int | None = None
    sampler_init: str | None = None
    init_from_ar: str | None = None  # AR -> diffusion adaptation: the AR it started from, and the settings
    adapt: dict[str, Any] = field(default_factory=dict)
    diffusion: dict[str, Any] = field(default_factory=dict)
    bd3lm: dict[str, Any] = field(default_factory=dict)
    gumbel: dict[str, Any] = field(default_factory=dict)
    sdtt: dict[str, Any] = field(default_factory=dict)
    adjust: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedCheckpoint:
    path: Path
    kind: str
    model: Any
    tokenizer: Any
    config: dict[str, Any]

    @property
    def method(self) -> dict[str, Any]:
        return self.config.get("method", {})

    @property
    def record(self) -> MethodRecord:
        """The method settings, typed (an unknown or ill-typed entry is an error naming it)."""
        return from_dict(MethodRecord, self.method, where=f"checkpoint '{self.path}' config.json: method")


def newest_complete(run_dir: Path) -> Path | None:
    """The newest step_* checkpoint that is complete (temporary and half-written folders are ignored)."""
    folder = Path(run_dir) / "checkpoints"
    done = [c for c in sorted(folder.glob("step_*")) if (c / "config.json").is_file() and (c / "model.safetensors").is_file()]
    return done[-1] if done else None


def clean_partial_writes(run_dir: Path) -> None:
    """Remove temporary folders left by a write that was killed (the finished checkpoints are untouched)."""
    folder = Path(run_dir) / "checkpoints"
    for leftover in list(folder.glob(".*.tmp-*")) + list(folder.glob(".*.old-*")):
        shutil.rmtree(leftover, ignore_errors=True)


def write_latest(run_dir: Path, ckpt: Path, step: int, final: bool = False) -> None:
    rel = os.path.relpath(ckpt, run_dir)
    atomic_write_text(Path(run_dir) / "latest.json", json.dumps({"path": rel, "step": step, "final": final}))


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Remove all but the newest `keep` step_* checkpoints (never the one latest.json names)."""
    folder = Path(run_dir) / "checkpoints"
    if keep < 1 or not folder.is_dir():
        return
    latest = resolve_checkpoint(run_dir) if (Path(run_dir) / "latest.json").is_file() else None
    steps = sorted(p for p in folder.glob("step_*") if p.is_dir())
    for p in steps[:-keep]:
        if latest is None or p.resolve() != latest.resolve():
            shutil.rmtree(p, ignore_errors=True)
