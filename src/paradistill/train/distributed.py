"""Devices, strategies and the collective pieces of the training loop (Lightning Fabric: DDP / FSDP).

- `make_fabric(cfg)` checks devices / strategy / precision with clear errors, then launches the processes.
- FSDP: the whole state is gathered to rank 0 for checkpoints (`full_states`), optimizer state is stored in
  the ordinary index-keyed torch format in every strategy (so a run can resume under another strategy), and
  EMA updates see the full parameters (`full_params`). FSDP on CPU (gloo) is refused by Lightning; we wrap
  with `device_id=cpu`, which torch's FSDP supports: slow, meant for tests and debugging.
- `shard_batches` runs deterministic batched generation jobs (sampling for evaluation, ADJUST trajectories,
  offline Gumbel extraction) split over ranks: batch b goes to rank b % world and the result is the same
  tensor for any number of devices.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Any, Callable

import torch

from ..config import closest_hint
from ..errors import UserError
from ..models.transformer import Block

STRATEGIES = ("auto", "ddp", "fsdp")
PRECISIONS = ("auto", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_accelerator(accelerator: str) -> str:
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return accelerator


def check_devices(devices: int, num_nodes: int, strategy: str, precision: str, accelerator: str) -> str:
    """Validate the scale settings before any process starts; returns the resolved accelerator."""
    if strategy not in STRATEGIES + ("ddp_spawn", "single_device"):
        raise UserError(f"strategy '{strategy}' is unknown{closest_hint(strategy, list(STRATEGIES))}: "
                        f"choose one of {', '.join(STRATEGIES)}")
    if precision not in PRECISIONS:
        raise UserError(f"precision '{precision}' is unknown{closest_hint(precision, list(PRECISIONS))}: "
                        f"choose one of 32, bf16-mixed, 16-mixed")
    if devices < 1 or num_nodes < 1:
        raise UserError(f"--devices {devices} --num-nodes {num_nodes}: both must be >= 1")
    acc = resolve_accelerator(accelerator)
    if acc == "cuda":
        have = torch.cuda.device_count()
        if have == 0:
            raise UserError("accelerator 'gpu' was requested but no CUDA GPU is visible: pass --accelerator cpu "
                            "(or check CUDA_VISIBLE_DEVICES)")
        if devices > have:
            raise UserError(f"--devices {devices}: only {have} GPU(s) are visible on this node; pass --devices "
                            f"{have} or fewer (use --num-nodes to add machines)")
    elif acc == "cpu":
        have = cpu_count()
        if devices > have:
            raise UserError(f"--devices {devices}: on CPU each device is a process, and this machine has {have} "
                            f"core(s); pass --devices {have} or fewer")
        if precision == "16-mixed":
            raise UserError("precision 16-mixed needs a CUDA GPU: on CPU use 32 or bf16-mixed")
    return acc


def _cpu_fsdp_strategy(**kwargs):
    from lightning.fabric.strategies import FSDPStrategy
    from torch.distributed.fsdp import FullyShardedDataParallel

    class CPUFSDPStrategy(FSDPStrategy):
        """FSDP over gloo on CPU: Lightning only allows FSDP on GPUs, torch's FSDP works with device_id=cpu."""

        def setup_module(self, module):
            return FullyShardedDataParallel(module, device_id=torch.device("cpu"),
                                            sharding_strategy=self.sharding_strategy, **self._fsdp_kwargs)

    return CPUFSDPStrategy(**kwargs)


def build_strategy(strategy: str, accelerator: str, find_unused_parameters: bool = True):
    """A Fabric strategy object (or name) for `strategy` on `accelerator` ('cuda' | 'cpu' | ...)."""
    if strategy == "fsdp":
        from lightning.fabric.strategies import FSDPStrategy

        kwargs = dict(state_dict_type="full", auto_wrap_policy={Block})
        return _cpu_fsdp_strategy(**kwargs) if accelerator == "cpu" else FSDPStrategy(**kwargs)
    if strategy == "ddp":
        from lightning.fabric.strategies import DDPStrategy

        return DDPStrategy(find_unused_parameters=find_unused_parameters)
    return strategy


def make_fabric(cfg):
    """A launched Fabric for a TrainConfig (devices, num_nodes, strategy, precision, accelerator)."""
    from lightning.fabric import Fabric

    precision = "32-true" if cfg.precision == "32" else cfg.precision
    acc = check_devices(cfg.devices, cfg.num_nodes, cfg.strategy, precision, cfg.accelerator)
    if precision == "auto":
        precision = "bf16-mixed" if acc == "cuda" else "32-true"
    strategy = build_strategy(cfg.strategy, acc, getattr(cfg, "find_unused_parameters", True))
    try:
        fabric = Fabric(accelerator=acc, devices=cfg.devices, num_nodes=cfg.num_nodes, strategy=strategy,
                        precision=precision)
    except Exception as e:  # Lightning raises ValueError / MisconfigurationException / RuntimeError
        raise UserError(f"cannot set up devices={cfg.devices}, num_nodes={cfg.num_nodes}, strategy={cfg.strategy}, "
                        f"precision={cfg.precision}: {e}") from None
    fabric.launch()
    if fabric.world_size > 1:
        import atexit

        atexit.register(close_process_group)
    return fabric


def close_process_group() -> None:
    """Tear the process group down before the interpreter exits: left to the interpreter's own shutdown, gloo's
    worker threads are sometimes destroyed while still joinable and the process aborts (SIGABRT, "terminate
    called without an active exception") after its work is done."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():  # no barrier: a rank that failed must not hang the others
        dist.destroy_process_group()


def is_rank_zero() -> bool:
    """True in the process that prints and writes (rank 0 of a launched Fabric, or a single process)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def micro_batching(batch_size: int, world: int, micro_batch_size: int = 0, grad_accum: int = 0) -> tuple[int, int]:
    """(micro, accum) with micro * accum * world == batch_size: the global batch is fixed by the recipe and the
    accumulation follows from the number of devices and the largest micro-batch that fits."""
    if batch_size % world:
        raise UserError(f"train.batch_size={batch_size} is not divisible by {world} devices: choose a global "
                        f"batch that is a multiple of devices x nodes")
    per_device = batch_size // world
    if grad_accum:
        if per_device % grad_accum:
            raise UserError(f"per-device batch {per_device} is not divisible by train.grad_accum={grad_accum}")
        return per_device // grad_accum, grad_accum
    micro = min(micro_batch_size or per_device, per_device)
    accum = math.ceil(per_device / micro)
    while per_device % accum:
        accum += 1
    return per_device // accum, accum


def is_fsdp(fabric) -> bool:
    from lightning.fabric.strategies import FSDPStrategy

    return isinstance(fabric.strategy, FSDPStrategy)


def fsdp_root(fmodel):
    return fmodel._forward_module


@contextlib.contextmanager
def full_params(fabric, fmodel, model, writeback: bool = False):
    """Yields a module whose named_parameters() are the full (unsharded) parameters with their plain names."""
    if not is_fsdp(fabric):
        yield model
        return
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    root = fsdp_root(fmodel)
    with FSDP.summon_full_params(root, writeback=writeback):
        yield root


def rekey_optimizer_state(state: dict[str, Any], names: list[str], to_names: bool) -> dict[str, Any]:
    """Convert an optimizer state dict between torch's index keys and FSDP's parameter-name keys."""
    index = {n: i for i, n in enumerate(names)}
    key = (lambda k: names[k]) if to_names else (lambda k: index[k])
    groups = [{**g, "params": [key(p) for p in g["params"]]} for g in state["param_groups"]]
    return {"state": {key(k): v for k, v in state["state"].items()}, "param_groups": groups}


def full_states(fabric, fmodel, model, optimizer, param_names: list[str]) -> tuple[dict, dict]:
    """(model state dict, index-keyed optimizer state dict), complete on rank 0 (collective under FSDP)."""
    if not is_fsdp(fabric):
        return model.state_dict(), optimizer.state_dict()
    from torch.distributed.fsdp import FullOptimStateDictConfig, FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    root = fsdp_root(fmodel)
    offload = fabric.device.type != "cpu"  # (offloading CPU tensors to the CPU crashes torch 2.13's FSDP)
    with FSDP.state_dict_type(root, StateDictType.FULL_STATE_DICT,
                              FullStateDictConfig(offload_to_cpu=offload, rank0_only=True),
                              FullOptimStateDictConfig(offload_to_cpu=offload, rank0_only=True)):
        model_state = root.state_dict()
        optim_state = FSDP.optim_state_dict(root, optimizer)
    if not fabric.is_global_zero:
        return {}, {}
    if getattr(model.cfg, "tie_weights", False) and "head.weight" not in model_state:
        model_state["head.weight"] = model_state["embed.weight"]  # FSDP lists a shared parameter once
    return model_state, rekey_optimizer_state(optim_state, param_names, to_names=False)


def load_optimizer_state(fabric, fmodel, optimizer, state: dict, param_names: list[str]) -> None:
    """Load an index-keyed optimizer state after setup (under FSDP: scattered to the shards)."""
    if not is_fsdp(fabric):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.fsdp import FullOptimStateDictConfig, FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    root = fsdp_root(fmodel)
    named = rekey_optimizer_state(state, param_names, to_names=True)
    with FSDP.state_dict_type(root, StateDictType.FULL_STATE_DICT, FullStateDictConfig(rank0_only=False),
                              FullOptimStateDictConfig(rank0_only=False)):
        flat = FSDP.optim_state_dict_to_load(root, optimizer, named)
    optimizer.load_state_dict(flat)


class StateView:
    """What save_checkpoint / EMA.weights_for need from a model (`cfg`, `state_dict()`), for a gathered state."""

    def __init__(self, cfg, state: dict[str, torch.Tensor]):
        self.cfg = cfg
        self._state = state

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self._state)  # a copy: callers pop tied keys


def all_sum(fabric, values: list[float]) -> list[float]:
    if fabric.world_size == 1:
        return values
    out = fabric.all_reduce(torch.tensor(values, dtype=torch.float64), reduce_op="sum")
    return [float(v) for v in out]


def any_rank(fabric, flag: bool) -> bool:
    """True on every rank when `flag` is True on some rank (a collective decision)."""
    return all_sum(fabric, [float(flag)])[0] > 0


def shard_batches(fabric, num: int, batch_size: int, fn: Callable[[int, int, int], torch.Tensor]) -> torch.Tensor:
    """Run `fn(batch_index, start, size) -> [size, ...]` for the batches of `num` items, batch b on rank
    b % world, and return all `num` rows in order on every rank. With per-batch seeds derived from
    `batch_index`, the result does not depend on the number of devices."""
    n_batches = math.ceil(num / batch_size)
    world, rank = (fabric.world_size, fabric.global_rank) if fabric is not None else (1, 0)
    mine = {b: fn(b, b * batch_size, min(batch_size, num - b * batch_size)) for b in range(rank, n_batches, world)}
    if world == 1:
        return torch.cat([mine[b] for b in range(n_batches)])[:num]
    template = next(iter(mine.values())) if mine else fn(0, 0, min(batch_size, num))
    rounds = math.ceil(n_batches / world)
    out = []
    for r in range(rounds):  # every rank joins every gather: pad with the template when it has no batch
        b = r * world + rank
        local = mine.get(b, template)
        padded = torch.zeros((batch_size,) + tuple(local.shape[1:]), dtype=local.dtype, device=local.device)
        padded[:len(local)] = local
        gathered = fabric.all_gather(padded)  # [world, batch_size, ...]
        for w in range(world):
            gb = r * world + w
            if gb < n_batches:
                out.append(gathered[w][:min(batch_size, num - gb * batch_size)].cpu())
    return torch.cat(out)[:num]
