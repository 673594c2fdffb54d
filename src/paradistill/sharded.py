"""Generation jobs split over devices (sampling for evaluation; the same pattern serves ADJUST trajectories and
offline Gumbel teacher samples, whose rows depend only on per-row seeds).

Batch b of a job is produced by rank b % world with its own seed derived from (seed, b), and every rank gets
all rows back in order (train.distributed.shard_batches), so the output is the same for 1 or N devices.

    paradistill sample RUN --num 1024 --devices 4          # 4 processes, one per GPU (or CPU core)
"""

from __future__ import annotations

import math

import torch

from .generation import GenerationResult, generate
from .seeding import derive_seed
from .train.distributed import shard_batches


def batch_seed(seed: int, batch_index: int) -> int:
    return derive_seed(seed, "sample-batch", batch_index)


def generate_sharded(loaded, num: int, fabric=None, seed: int = 0, batch_size: int = 16, **kwargs) -> GenerationResult:
    """`generate` with batch b on rank b % world and seed batch_seed(seed, b); the result (tokens [num, L], per
    batch NFE and seconds) is complete on every rank and independent of the number of devices."""
    kwargs.pop("progress", None)
    stats: dict[int, tuple[float, float]] = {}
    info: dict = {}

    def run_batch(b: int, start: int, size: int) -> torch.Tensor:
        res = generate(loaded, size, seed=batch_seed(seed, b), batch_size=size, progress=False, **kwargs)
        stats[b] = (float(res.nfe[0]), float(res.seconds[0]))
        info.update(res.info)
        return res.tokens.to(torch.long)

    tokens = shard_batches(fabric, num, batch_size, run_batch)
    per_batch = shard_batches(fabric, math.ceil(num / batch_size), 1,
                              lambda b, start, size: torch.tensor([stats.get(b, (0.0, 0.0))], dtype=torch.float64))
    sizes = [min(batch_size, num - s) for s in range(0, num, batch_size)]
    info.update(devices=fabric.world_size if fabric is not None else 1, seeding="per batch (sharded)")
    return GenerationResult(tokens, [int(n) for n in per_batch[:, 0].tolist()], per_batch[:, 1].tolist(), sizes, info)
