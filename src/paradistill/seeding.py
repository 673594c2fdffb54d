"""Derived seeds: every independent random stream of a run (a training step's noise, an epoch's batch order, a
sampling batch, a trajectory shard) is seeded by `derive_seed(seed, *keys)`, so streams never collide and no
module invents its own seed arithmetic."""

from __future__ import annotations

_MASK64 = (1 << 64) - 1

# Stream names, so two uses of the same (seed, key) in different places still draw independent numbers.
STREAMS = {"step": 1, "dropout": 2, "epoch": 3, "sample-batch": 4, "trajectory-shard": 5, "gumbel-online": 6,
           "gumbel-offline": 7, "nelbo": 8, "harness-generate": 9}


def splitmix64(z: int) -> int:
    """One step of the splitmix64 finaliser on a 64-bit unsigned integer."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def derive_seed(seed: int, stream: str, *keys: int) -> int:
    """A seed in [0, 2**63) for `stream` (a name in STREAMS) and integer `keys` (step, batch index, ...)."""
    z = splitmix64(int(seed) & _MASK64)
    for key in (STREAMS[stream], *keys):
        z = splitmix64(z ^ (int(key) & _MASK64))
    return z >> 1
