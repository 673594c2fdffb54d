"""ADJUST trajectories on disk. A trajectory is stored compactly as the final tokens `[L]` plus the order in which
positions were unmasked `[L]` (-1 padding): the state after j picks is the final tokens at fixed positions and at
`order[:j]`, MASK elsewhere. Shards (`shard_00000.npz`) are written atomically; `trajectories.json` records the
base model's fingerprint and the settings, so recording resumes shard by shard and a file from another base is
refused."""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..sampling.base import SamplingOptions
from ..seeding import derive_seed
from .adjust_decode import joint_decode

META_FILE = "trajectories.json"


def _atomic_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:8]}.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def _template_hash(templates: torch.Tensor, fixed: torch.Tensor) -> str:
    h = hashlib.sha256(templates.cpu().numpy().astype(np.int64).tobytes())
    h.update(fixed.cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _check_meta(meta: dict, want: dict, folder: Path) -> None:
    if meta.get("fingerprint") != want["fingerprint"]:
        raise UserError(f"trajectories in '{folder}' were recorded with a different base model (fingerprint "
                        f"{meta.get('fingerprint')} vs {want['fingerprint']}): delete the folder or point at the "
                        "trajectories of this base")
    diff = {k: (meta.get(k), v) for k, v in want.items() if k != "num" and meta.get(k) != v}
    if diff:
        raise UserError(f"trajectories in '{folder}' were recorded with other settings {diff} (recorded, now): "
                        "delete the folder or use a new one")


def generate_trajectories(adapter, folder, templates: torch.Tensor, fixed: torch.Tensor, num: int,
                          batch_size: int = 64, shard_size: int = 256, seed: int = 0, options=None,
                          progress: bool = True, cache_hidden: bool = False) -> Path:
    """Record `num` one-token-per-pass trajectories of the frozen base into `folder` (resumable by shard).
    templates, fixed: [P, L] (row r uses template r % P: BOS only, or prompts). `cache_hidden` also stores the
    full pass's last hidden state at every recorded state (float16 `hidden_XXXXX.npy` [n, L states, L, H]): the
    exact h^(0) and targets head(h) of training windows, so training needs no full passes."""
    if num < 1 or batch_size < 1 or shard_size < 1:
        raise UserError(f"trajectories={num}, batch_size={batch_size}, shard_size={shard_size}: all must be >= 1")
    options = options or SamplingOptions()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    want = {"format": 1, "fingerprint": adapter.fingerprint(), "seq_len": int(templates.shape[1]),
            "shard_size": shard_size, "seed": seed, "temperature": options.temperature, "top_p": options.top_p,
            "templates": _template_hash(templates, fixed), "num": num, "hidden": bool(cache_hidden),
            "hidden_size": int(adapter.hidden_size)}
    meta_path = folder / META_FILE
    if meta_path.is_file():
        _check_meta(json.loads(meta_path.read_text()), want, folder)
    meta_path.write_text(json.dumps(want, indent=2))
    shards = [(i, s, min(num, s + shard_size)) for i, s in enumerate(range(0, num, shard_size))]
    todo = [sh for sh in shards if not _shard_complete(folder, *sh, hidden=cache_hidden)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num, initial=num - sum(e - s for _, s, e in todo), desc="ADJUST trajectories",
                   dynamic_ncols=True)
    device = next(adapter.model.parameters()).device
    for index, start, end in todo:
        gen = torch.Generator().manual_seed(derive_seed(seed, "trajectory-shard", index))
        toks, orders = [], []
        length = templates.shape[1]
        hidden = _open_hidden(folder, index, end - start, length, adapter.hidden_size) if cache_hidden else None
        for b in range(start, end, batch_size):
            rows = torch.arange(b, min(end, b + batch_size)) % templates.shape[0]
            record = None
            if hidden is not None:
                def record(count, h, lo=b - start):  # state index = picks made so far
                    n = h.shape[0]
                    hidden[np.arange(lo, lo + n), count.cpu().numpy(), : h.shape[1]] = h.cpu().numpy()
            x, order, _, _ = joint_decode(adapter, templates[rows].to(device), fixed[rows].to(device), gen, options,
                                          on_pass=record)
            toks.append(x.cpu())
            orders.append(order.cpu())
            if bar is not None:
                bar.update(len(rows))
        if hidden is not None:
            hidden.flush()
            del hidden
            os.replace(folder / f".hidden_{index:05d}.npy.tmp", folder / f"hidden_{index:05d}.npy")
        _atomic_npz(folder / f"shard_{index:05d}.npz", tokens=torch.cat(toks).numpy().astype(np.int32),
                    order=torch.cat(orders).numpy().astype(np.int16))
    if bar is not None:
        bar.close()
    return folder


def _open_hidden(folder: Path, index: int, rows: int, length: int, hidden_size: int):
    """A float16 memmap [rows, L states, L, H] written under a temporary name (renamed when complete)."""
    return np.lib.format.open_memmap(folder / f".hidden_{index:05d}.npy.tmp", mode="w+", dtype=np.float16,
                                     shape=(rows, length, length, hidden_size))


def _shard_complete(folder: Path, index: int, start: int, end: int, hidden: bool = False) -> bool:
    path = folder / f"shard_{index:05d}.npz"
    if not path.is_file() or (hidden and not (folder / f"hidden_{index:05d}.npy").is_file()):
        return False
    try:
        with np.load(path) as z:
            return z["tokens"].shape[0] == end - start
    except (OSError, ValueError, KeyError, EOFError):
        return False


class HiddenStore:
    """Cached full-pass hidden states of recorded trajectories: `get(rows [B], states [B]) -> [B, L, H]` float32."""

    def __init__(self, folder: Path, num: int, shard_size: int):
        self.shard_size = shard_size
        self.parts = [np.load(folder / f"hidden_{i:05d}.npy", mmap_mode="r")
                      for i in range(math.ceil(num / shard_size))]

    def get(self, rows: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        # A state with every generated position revealed (index L when no position is fixed, e.g. text packed
        # without BOS) has no full pass recorded and nothing left to score: any stored state stands in for it.
        states = states.clamp_max(self.parts[0].shape[1] - 1)
        out = [self.parts[r // self.shard_size][r % self.shard_size, s]
               for r, s in zip(rows.tolist(), states.tolist())]
        return torch.from_numpy(np.stack(out).astype(np.float32))


def load_hidden_store(folder, fingerprint: str) -> HiddenStore | None:
    """The hidden-state cache of `folder` (None when the trajectories were recorded without one)."""
    folder = Path(folder)
    meta = json.loads((folder / META_FILE).read_text())
    if meta.get("fingerprint") != fingerprint or not meta.get("hidden"):
        return None
    return HiddenStore(folder, int(meta["num"]), int(meta["shard_size"]))


def load_trajectories(folder, fingerprint: str) -> np.ndarray:
    """[N, 2L + 1] int32 rows: final tokens, the unmasking order (-1 padding), the row's index (for the hidden
    cache). Checks the base fingerprint."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise UserError(f"'{folder}' holds no ADJUST trajectories ({META_FILE} missing): record them with "
                        "`paradistill distill adjust --base CKPT`")
    meta = json.loads(meta_path.read_text())
    if meta.get("fingerprint") != fingerprint:
        raise UserError(f"trajectories in '{folder}' come from a different base model (fingerprint "
                        f"{meta.get('fingerprint')}, this base {fingerprint}): record trajectories with this base")
    num, size = int(meta["num"]), int(meta["shard_size"])
    parts = []
    for index, start in enumerate(range(0, num, size)):
        end = min(num, start + size)
        if not _shard_complete(folder, index, start, end, hidden=bool(meta.get("hidden"))):
            raise UserError(f"trajectory shard {index} in '{folder}' is missing or incomplete: re-run with --resume")
        with np.load(folder / f"shard_{index:05d}.npz") as z:
            ids = np.arange(start, end, dtype=np.int32)[:, None]
            parts.append(np.concatenate([z["tokens"], z["order"].astype(np.int32), ids], axis=1))
    return np.concatenate(parts).astype(np.int32)
