"""Memory estimates before large allocations: a clear error instead of an out-of-memory kill."""

from __future__ import annotations

import os

import torch

from .errors import UserError

# Refuse an allocation that would take more than this fraction of the memory available now.
SAFETY_FRACTION = float(os.environ.get("PARADISTILL_MEMORY_FRACTION", "0.8"))


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Free memory on the device (MemAvailable on CPU, cudaMemGetInfo on GPU); None when unknown."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_memory(needed: int, what: str, fix: str, device: torch.device | str = "cpu",
                 available: int | None = None) -> None:
    """Raise UserError naming `what` and `fix` when `needed` bytes exceed the safe share of free memory."""
    free = available if available is not None else available_bytes(device)
    if free is None:
        return
    if needed > SAFETY_FRACTION * free:
        raise UserError(f"{what} needs about {human(needed)} but only {human(free)} is free on {torch.device(device)}: "
                        f"{fix}")


def sampling_bytes(batch: int, length: int, vocab: int) -> int:
    """Peak of one diffusion sampling step: float32 logits + SUBS log-probs, float64 draws on every row."""
    return batch * length * vocab * (4 + 4 + 8)
