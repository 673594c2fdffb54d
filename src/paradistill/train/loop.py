"""One explicit training loop on Lightning Fabric, shared by every objective (AR, MDLM, BD3-LM, GD, SDTT, ADJUST).

Determinism: the batch order of epoch e is a permutation seeded by (seed, e); the diffusion noise of step s
comes from a generator seeded by (seed, s). So the run is a pure function of (config, step) and resuming
from a checkpoint continues bit-exactly on CPU.

Distributed (train/distributed.py): the global batch is fixed by the recipe; global micro-batch
k = accumulation_index * world + rank takes rows k, k + world*accum, ... of the step's batch and seeds its noise
with (seed, step, k), so 2 DDP processes reproduce 1 process with 2 accumulation steps. Logging, metrics and
checkpoints are rank-0 only (FSDP state is gathered first); evaluation is split over ranks and all-reduced.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import (clean_partial_writes, prune_checkpoints, read_config, resolve_checkpoint, save_checkpoint,
                          write_latest)
from ..errors import TrainingDiverged, UserError
from ..io import atomic_write_json, atomic_write_text, disk_errors, json_dumps
from ..rundir import RunLock, check_resume_matches
from ..seeding import derive_seed
from . import distributed as dist
from .config import TrainConfig, lr_at
from .distributed import make_fabric  # noqa: F401  (re-exported)
from .ema import EMA


def step_generator(seed: int, step: int, salt: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, "step", step, salt))


class BatchSchedule:
    """Global batch `step` of a [N, L] token array: rows of a seeded per-epoch permutation."""

    def __init__(self, data: np.ndarray, batch_size: int, seed: int):
        if len(data) < batch_size:
            raise UserError(f"training data has {len(data)} sequences, fewer than one batch ({batch_size}): "
                            "prepare more data or lower train.batch_size")
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.per_epoch = len(data) // batch_size
        self._perm_epoch, self._perm = -1, None

    def rows(self, step: int) -> np.ndarray:
        epoch, index = divmod(step, self.per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch))
            self._perm = torch.randperm(len(self.data), generator=g).numpy()
            self._perm_epoch = epoch
        return np.sort(self._perm[index * self.batch_size:(index + 1) * self.batch_size])

    def batch(self, step: int) -> torch.Tensor:
        return torch.from_numpy(self.data[self.rows(step)].astype(np.int64))


class MetricsLog:
    """Rank-0 metrics to metrics.jsonl and metrics.csv."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.jsonl = run_dir / "metrics.jsonl"
        self.csv = run_dir / "metrics.csv"

    def truncate(self, step: int) -> None:
        """Keep only records up to `step` (a resumed run rewrites what came after its checkpoint)."""
        def step_of(line: str, parse) -> int | None:  # None: a line torn by a killed writer
            try:
                return parse(line)
            except (ValueError, KeyError, TypeError, IndexError):
                return None

        if self.jsonl.exists():
            keep = [line for line in self.jsonl.read_text().splitlines()
                    if (s := step_of(line, lambda x: int(json.loads(x)["step"]))) is not None and s <= step]
            atomic_write_text(self.jsonl, "".join(k + "\n" for k in keep))
        if self.csv.exists():
            lines = self.csv.read_text().splitlines()
            keep = lines[:1] + [line for line in lines[1:]
                                if (s := step_of(line, lambda x: int(x.split(",", 1)[0]))) is not None and s <= step]
            atomic_write_text(self.csv, "".join(k + "\n" for k in keep))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with disk_errors(self.jsonl), open(self.jsonl, "a") as f:
            f.write(json_dumps(record) + "\n")  # strict JSON: a non-finite value is written as null
        new = not self.csv.exists()
        with open(self.csv, "a") as f:
            if new:
                f.write("step,kind,name,value\n")
            for k, v in record.items():
                if k not in ("step", "kind") and isinstance(v, (int, float)) and math.isfinite(v):
                    f.write(f"{record['step']},{record.get('kind', 'train')},{k},{v}\n")


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    steps: int
    last_val: float | None
    seconds: float


@torch.no_grad()
def evaluate(objective, model, val: np.ndarray, cfg: TrainConfig, device, fabric=None) -> float:
    """Mean NLL / NELBO per counted token over the first eval_batches * batch_size validation rows.

    With a multi-process `fabric`, batch i is evaluated on rank i % world and the sums are all-reduced; every
    rank runs the same number of forward passes (FSDP needs that), padding with an uncounted batch."""
    model.eval()
    world, rank = (fabric.world_size, fabric.global_rank) if fabric is not None else (1, 0)
    total, count = 0.0, 0
    bsz = max(1, min(cfg.batch_size, len(val)))
    n_batches = min(cfg.eval_batches, max(1, len(val) // bsz))
    for j in range(math.ceil(n_batches / world)):
        i = j * world + rank
        real = i < n_batches
        i = i if real else 0
        batch = torch.from_numpy(val[i * bsz:(i + 1) * bsz].astype(np.int64)).to(device)
        s, n = objective.eval_terms(model, batch, step_generator(cfg.seed, i, salt=99))
        if real:
            total += float(s)
            count += int(n)
    if fabric is not None:
        total, count = dist.all_sum(fabric, [total, float(count)])
    model.train()
    return total / max(count, 1)


def train(objective, model, train_data: np.ndarray, val_data: np.ndarray | None, cfg: TrainConfig,
          run_dir: str | Path, tokenizer, method: dict[str, Any], resume: bool = False,
          progress: bool = True, fabric=None, optimizer_state: dict[str, Any] | None = None,
          ema_state: dict[str, Any] | None = None) -> TrainResult:
    """`optimizer_state` / `ema_state`: when not resuming, start the optimizer / the weight average from this state
    (SDTT rounds that carry them across rounds)."""
    run_dir = Path(run_dir)
    fabric = fabric or make_fabric(cfg)
    lock = RunLock(run_dir)
    failure = None
    if fabric.is_global_zero:  # one writer per run directory (a second job is refused, a dead one's lock reported)
        try:
            lock.acquire()
            if not resume and (run_dir / "latest.json").is_file():
                raise UserError(f"'{run_dir}' already holds a training run with checkpoints: resume it (--resume) or "
                                "choose another --out")
        except UserError as e:
            failure = e
    if dist.any_rank(fabric, failure is not None):
        lock.release()
        raise failure or UserError(f"run directory '{run_dir}' could not be locked by rank 0")
    try:
        return _train(objective, model, train_data, val_data, cfg, run_dir, tokenizer, method, resume, progress,
                      fabric, optimizer_state, ema_state)
    finally:
        lock.release()


def _load_train_state(ckpt: Path) -> dict[str, Any]:
    file = ckpt / "train_state.pt"
    try:
        state = torch.load(file, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise UserError(f"'{file}' is missing: this checkpoint cannot be resumed; delete '{ckpt}' to resume from "
                        "an earlier one, or start a new run") from None
    except Exception as e:  # truncated / corrupt pickle or zip
        raise UserError(f"'{file}' is truncated or corrupt ({type(e).__name__}): delete '{ckpt}' to resume from an "
                        "earlier checkpoint, or start a new run") from None
    if not isinstance(state, dict) or "step" not in state or "model" not in state:
        raise UserError(f"'{file}' is not a paradistill training state: delete '{ckpt}' or start a new run")
    return state


def _all_finite(model) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _train(objective, model, train_data, val_data, cfg, run_dir, tokenizer, method, resume, progress, fabric,
           optimizer_state, ema_state=None):
    world, rank = fabric.world_size, fabric.global_rank
    micro, accum = dist.micro_batching(cfg.batch_size, world, cfg.micro_batch_size, cfg.grad_accum)
    if val_data is not None and len(val_data) == 0:
        if fabric.is_global_zero:
            print(f"paradistill: note: the validation split is empty; '{run_dir}' is trained without validation "
                  "(raise data.val_fraction or add documents to evaluate)", file=sys.stderr)
        val_data = None
    schedule = BatchSchedule(train_data, cfg.batch_size, cfg.seed)
    params = [p for p in objective.trainable_parameters(model) if p.requires_grad]
    name_of = {id(p): n for n, p in model.named_parameters()}
    param_names = [name_of.get(id(p), f"param_{i}") for i, p in enumerate(params)]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    raw_optimizer = optimizer
    ema = EMA(model, cfg.ema) if cfg.ema > 0 else None
    if ema is not None and ema_state is not None and not resume:
        ema.load_state_dict(ema_state)
    start_step, skipped = 0, 0
    last_ckpt = None
    if fabric.is_global_zero:
        clean_partial_writes(run_dir)
    if resume and (run_dir / "latest.json").is_file():
        last_ckpt = resolve_checkpoint(run_dir)
        check_resume_matches(run_dir, read_config(last_ckpt), objective.kind, method, asdict(model.cfg))
        state = _load_train_state(last_ckpt)
        model.load_state_dict(state["model"])
        optimizer_state = state["optimizer"]  # loaded after setup (FSDP scatters it to the shards)
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        if hasattr(objective, "load_state_dict") and state.get("objective") is not None:
            objective.load_state_dict(state["objective"])
        start_step, skipped = state["step"], state.get("skipped", 0)
    if hasattr(objective, "to"):
        objective.to(fabric.device)
    fmodel, optimizer = fabric.setup(model, optimizer)
    if optimizer_state is not None:
        dist.load_optimizer_state(fabric, fmodel, raw_optimizer, optimizer_state, param_names)
    log = MetricsLog(run_dir, fabric.is_global_zero)
    if fabric.is_global_zero:
        log.truncate(start_step)  # steps after the checkpoint are redone: drop their old records
    if fabric.is_global_zero and not (resume and (run_dir / "train_config.json").is_file()):
        atomic_write_json(run_dir / "train_config.json", {"train": asdict(cfg), "method": method}, indent=2,
                          default=str)

    def checkpoint(step: int, final: bool = False) -> Path:
        path = run_dir / "checkpoints" / f"step_{step:07d}"
        if not dist.any_rank(fabric, not _all_finite(model)):
            pass
        else:  # never let a checkpoint of non-finite weights become the latest
            if bar is not None:
                bar.close()
            raise TrainingDiverged(f"the weights became non-finite by step {step} (skipped steps: {skipped}); last "
                                   f"good checkpoint: {last_ckpt or 'none'}. Lower train.lr or raise "
                                   "train.warmup_steps")
        model_state, optim_state = dist.full_states(fabric, fmodel, model, raw_optimizer, param_names)
        if fabric.is_global_zero:
            view = dist.StateView(model.cfg, model_state) if dist.is_fsdp(fabric) else model
            state = {"model": model_state, "optimizer": optim_state, "step": step,
                     "skipped": skipped, "ema": ema.state_dict() if ema else None,
                     "objective": objective.state_dict() if hasattr(objective, "state_dict") else None}
            save_checkpoint(path, view, objective.kind, tokenizer, method,
                            ema_weights=ema.weights_for(view) if ema else None, train_state=state)
            write_latest(run_dir, path, step, final)
            prune_checkpoints(run_dir, cfg.keep_checkpoints)
        fabric.barrier()
        return path

    def validate(step: int) -> float:
        value = run_eval(objective, fmodel, model, ema, val_data, cfg, fabric)
        log.write({"step": step, "kind": "val", "val_loss": value, "val_ppl": math.exp(min(value, 50))})
        if bar is not None and not bar.disable:
            bar.write(f"step {step}: val loss {value:.4f} (ppl {math.exp(min(value, 50)):.2f})")
        return value

    bar = None
    if progress and fabric.is_global_zero:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_steps, initial=start_step, desc=f"train {objective.kind}", dynamic_ncols=True)
    started = time.perf_counter()
    tokens_seen, window_start, last_val = 0, time.perf_counter(), None
    fmodel.train()
    step = start_step
    while step < cfg.max_steps:
        if cfg.max_minutes > 0 and dist.any_rank(fabric, (time.perf_counter() - started) / 60 > cfg.max_minutes):
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(cfg, step)
        if hasattr(objective, "set_step"):  # step-dependent objectives (diffusion/adapt.py: attention annealing)
            objective.set_step(step)
        rows = schedule.rows(step)  # sorted row indices of the global batch; each rank reads only its own rows
        metrics: dict[str, float] = {}
        loss_total = 0.0
        for a in range(accum):
            # Global micro-batch k = a * world + rank takes rows k, k + world*accum, ...; its noise and dropout
            # depend on (step, k) only, so any (devices, accumulation) split of one global batch computes the
            # same gradient (up to summation order).
            k = a * world + rank
            batch = torch.from_numpy(train_data[rows[k::world * accum]].astype(np.int64)).to(fabric.device)
            gen = step_generator(cfg.seed, step, salt=k)
            torch.manual_seed(derive_seed(cfg.seed, "dropout", step, k))
            with fabric.no_backward_sync(fmodel, enabled=a < accum - 1):
                loss, metrics = objective.loss(fmodel, batch, gen)
                fabric.backward(loss / accum)  # also when non-finite: every rank must join the gradient sync
            loss_total += float(loss.detach()) / accum
            tokens_seen += batch.numel() * world
        grad_norm = (fabric.clip_gradients(fmodel, optimizer, max_norm=cfg.grad_clip, error_if_nonfinite=False)
                     if cfg.grad_clip > 0 else None)
        bad_local = not math.isfinite(loss_total) or (grad_norm is not None and not bool(torch.isfinite(grad_norm)))
        loss_sum, n_bad = dist.all_sum(fabric, [loss_total, float(bad_local)])
        loss_total = loss_sum / world  # mean over the whole global batch (logged by rank 0)
        finite = n_bad == 0
        if not finite:
            optimizer.zero_grad(set_to_none=True)
            where = f"'{last_ckpt}' (intact)" if last_ckpt else "none yet"
            if cfg.nan_policy == "stop" or skipped >= cfg.max_skipped_steps:
                if bar is not None:
                    bar.close()
                raise TrainingDiverged(
                    f"non-finite loss or gradient at step {step} (skipped so far: {skipped}); last good checkpoint: "
                    f"{where}. Lower train.lr, raise train.warmup_steps, or set train.nan_policy=skip")
            skipped += 1
            step += 1
            continue
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            with dist.full_params(fabric, fmodel, model) as full:
                ema.update(full)
        step += 1
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            now = time.perf_counter()
            tps = tokens_seen / max(now - window_start, 1e-9)
            tokens_seen, window_start = 0, now
            record = {"step": step, "kind": "train", "loss": loss_total, "lr": lr_at(cfg, step - 1),
                      "tokens_per_s": tps, "elapsed_s": now - started, **{k: v for k, v in metrics.items() if k != "loss"}}
            log.write(record)
            if bar is not None:
                bar.set_postfix(loss=f"{loss_total:.3f}", tok_s=f"{tps:.0f}")
        if bar is not None:
            bar.update(1)
        if cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0 and step < cfg.max_steps:
            last_ckpt = checkpoint(step)  # before evaluating: a failing evaluation never costs the training
        if val_data is not None and cfg.eval_every > 0 and step % cfg.eval_every == 0 and step < cfg.max_steps:
            last_val = validate(step)
    if bar is not None:
        bar.close()
    steps_run = step - start_step
    if skipped and fabric.is_global_zero:
        print(f"paradistill: note: {skipped} of {step} steps were skipped (non-finite loss or gradient)",
              file=sys.stderr)
    if steps_run > 0 and 2 * skipped > step:
        raise TrainingDiverged(f"{skipped} of {step} steps were skipped (non-finite loss or gradient): the model "
                               f"did not train; last good checkpoint: {last_ckpt or 'none'}. Lower train.lr or raise "
                               "train.warmup_steps")
    final = checkpoint(step, final=False)
    if val_data is not None and (last_val is None or step >= cfg.max_steps):
        last_val = validate(step)
        if not math.isfinite(last_val):
            raise TrainingDiverged(f"the validation loss at step {step} is not finite: the model diverged; "
                                   f"checkpoint '{final}' is not marked final. Lower train.lr")
    if fabric.is_global_zero and step >= cfg.max_steps:
        write_latest(run_dir, final, step, final=True)
    fabric.barrier()
    return TrainResult(run_dir, final, step, last_val, time.perf_counter() - started)


def run_eval(objective, fmodel, model, ema, val_data, cfg, fabric) -> float:
    """Validation with the EMA weights when EMA is on (those are the weights that get sampled)."""
    if ema is not None:
        with dist.full_params(fabric, fmodel, model, writeback=True) as full:
            ema.swap(full)
    try:
        return evaluate(objective, fmodel, val_data, cfg, fabric.device, fabric)
    finally:
        if ema is not None:
            with dist.full_params(fabric, fmodel, model, writeback=True) as full:
                ema.swap(full)
