"""The training loop's typed configuration (the `train.*` keys of every recipe) and its learning-rate schedule.

Kept apart from train/loop.py so that recipes and commands can read or build a TrainConfig without importing the
loop itself."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import check_ranges, closest_hint
from ..errors import UserError
from .distributed import PRECISIONS, STRATEGIES


@dataclass
class TrainConfig:
    max_steps: int = 1000
    batch_size: int = 32  # global batch (all devices, all accumulation steps)
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.98
    grad_clip: float = 1.0
    ema: float = 0.999  # 0 disables EMA; the decay after n updates is min(ema, (1 + n) / (10 + n)) (warm-up)
    eval_every: int = 250
    eval_batches: int = 8
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    max_minutes: float = 0.0  # > 0: stop (and save) when the wall-clock budget is spent
    nan_policy: str = "stop"  # "stop" | "skip"
    max_skipped_steps: int = 20
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"  # "32-true" on CPU, "bf16-mixed" on GPU
    grad_accum: int = 0  # 0: computed from batch_size and devices (micro-batch <= micro_batch_size)
    micro_batch_size: int = 0  # 0: batch_size / world size
    find_unused_parameters: bool = True  # DDP: tolerate parameters without a gradient in a step

    def validate(self) -> None:
        if self.max_steps < 1:
            raise UserError(f"train.max_steps={self.max_steps}: must be >= 1")
        if self.batch_size < 1:
            raise UserError(f"train.batch_size={self.batch_size}: must be >= 1")
        if not self.lr > 0:
            raise UserError(f"train.lr={self.lr}: must be > 0")
        if self.nan_policy not in ("stop", "skip"):
            raise UserError(f"train.nan_policy={self.nan_policy!r}: choose 'stop' or 'skip'")
        if self.strategy not in STRATEGIES + ("ddp_spawn", "single_device"):
            raise UserError(f"train.strategy={self.strategy!r} is unknown"
                            f"{closest_hint(self.strategy, list(STRATEGIES))}: choose auto, ddp or fsdp")
        if self.precision not in PRECISIONS:
            raise UserError(f"train.precision={self.precision!r} is unknown"
                            f"{closest_hint(self.precision, list(PRECISIONS))}: choose 32, bf16-mixed "
                            "or 16-mixed")
        if self.devices < 1 or self.num_nodes < 1:
            raise UserError(f"train.devices={self.devices}, train.num_nodes={self.num_nodes}: both must be >= 1")
        check_ranges(self, "train", {
            "log_every": (1, None), "eval_batches": (1, None), "keep_checkpoints": (1, None),
            "warmup_steps": (0, None), "eval_every": (0, None), "checkpoint_every": (0, None),
            "max_skipped_steps": (0, None), "grad_accum": (0, None), "micro_batch_size": (0, None),
            "weight_decay": (0, None), "grad_clip": (0, None), "max_minutes": (0, None), "seed": (0, None),
            "min_lr_ratio": (0, 1), "beta1": (0, "<1"), "beta2": (0, "<1"), "ema": (0, "<1")})


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio * lr."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
