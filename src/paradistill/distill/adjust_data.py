"""ADJUST (Bansal & Sanghavi 2025) data side: the adapter a sampler layer sits on, the one-token-per-pass
decoding step shared by trajectory recording and inference, and recorded trajectories on disk.

A trajectory is stored compactly as the final tokens `[L]` plus the order in which positions were unmasked
`[L]` (-1 padding): the state after j picks is the final tokens at fixed positions and at `order[:j]`, MASK
elsewhere. Shards (`shard_00000.npz`) are written atomically; `trajectories.json` records the base model's
fingerprint and the settings, so generation resumes shard by shard and a file from another base is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from ..diffusion.mdlm import NEG_INF
from ..errors import UserError
from ..sampling.categorical import sample_categorical

META_FILE = "trajectories.json"


@runtime_checkable
class DiffusionLMAdapter(Protocol):
    """What an ADJUST sampler needs from a frozen masked-diffusion LM (ours, or Dream / LLaDA via transformers)."""

    mask_id: int
    vocab_size: int
    hidden_size: int
    embed_size: int

    def hidden_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, L] long -> (hidden [B, L, H] = the output head's input, logits [B, L, V]); one full pass."""

    def embed_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, L] long -> frozen token embeddings [B, L, E]."""

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """h: [B, L, H] -> logits [B, L, V] (the frozen output head)."""

    def attention(self, length: int):
        """Attention spec for the sampler block over `length` positions ("bidirectional" or a bool mask)."""

    def fingerprint(self) -> str:
        """A hash that changes whenever the frozen weights (or their meaning) change."""


def block_causal_mask(length: int, block_size: int, device=None) -> torch.Tensor:
    """[L, L] bool: position i may attend j iff block(j) <= block(i) (BD3-LM decoding with clean prefix blocks)."""
    blocks = torch.arange(length, device=device) // block_size
    return blocks[None, :] <= blocks[:, None]


def weights_fingerprint(module: torch.nn.Module, *extra: str) -> str:
    h = hashlib.sha256("|".join(extra).encode())
    for name, value in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


class ParadistillAdapter:
    """A paradistill MDLM or BD3-LM checkpoint behind the adapter protocol (BD3-LM: block-causal attention)."""

    def __init__(self, model, mask_id: int, kind: str = "mdlm", block_size: int | None = None,
                 tokenizer_fingerprint: str = ""):
        missing = [a for a in ("embed", "head", "cfg") if getattr(model, a, None) is None]
        if missing:
            raise UserError(f"the base model has no {missing}: ADJUST needs the token embedding, the output head "
                            "and the hidden states; use an MDLM or BD3-LM checkpoint of paradistill")
        self.model, self.mask_id, self.kind, self.block_size = model, mask_id, kind, block_size
        self.vocab_size = model.cfg.vocab_size
        self.hidden_size = self.embed_size = model.cfg.dim
        self.rope_base = model.cfg.rope_base
        self._tok_fp = tokenizer_fingerprint
        self._fp = None
        freeze(model)

    @classmethod
    def from_loaded(cls, loaded) -> "ParadistillAdapter":
        if loaded.kind not in ("mdlm", "bd3lm"):
            raise UserError(f"checkpoint '{loaded.path}' holds a '{loaded.kind}' model: ADJUST sits on a masked "
                            "diffusion base; pass an MDLM or BD3-LM checkpoint as --base")
        if loaded.tokenizer is None:
            raise UserError(f"checkpoint '{loaded.path}' has no tokenizer/ folder: ADJUST needs the mask id")
        block = int(loaded.method["block_size"]) if loaded.kind == "bd3lm" else None
        adapter = cls(loaded.model, loaded.tokenizer.mask_id, loaded.kind, block, loaded.tokenizer.fingerprint())
        check_adapter(adapter, f"checkpoint '{loaded.path}'")
        return adapter

    def attention(self, length: int):
        if self.block_size is None:
            return "bidirectional"
        return block_causal_mask(length, self.block_size, self.model.embed.weight.device)

    @torch.no_grad()
    def hidden_and_logits(self, x):
        # x: [B, L] long
        sigma = None
        if self.model.cfg.time_conditioning:
            sigma = (x == self.mask_id).float().mean(1).clamp_min(1e-3)
        out = self.model(x, attn=self.attention(x.shape[1]), sigma=sigma)
        if out.hidden is None:
            raise UserError("the base model returned no hidden states: ADJUST needs them")
        return out.hidden.float(), out.logits.float()

    def embed_tokens(self, x):
        return self.model.embed(x).float()

    def head(self, h):
        return self.model.head(h.to(self.model.head.weight.dtype)).float()

    def fingerprint(self) -> str:
        if self._fp is None:
            self._fp = weights_fingerprint(self.model, self.kind, str(self.block_size), self._tok_fp)
        return self._fp

    def to(self, device):
        self.model.to(device)
        return self


class HFDiffusionAdapter:
    """A Hugging Face diffusion LM (Dream / LLaDA style) behind the adapter protocol: hidden states from
    `output_hidden_states=True`, `get_input_embeddings()`, and `head` (default: `lm_head` or
    `get_output_embeddings()`); `shift=True` for models whose logits at i predict token i+1 (Dream)."""

    def __init__(self, model, mask_id: int, head=None, shift: bool = False, name: str = "hf"):
        head = head or getattr(model, "lm_head", None) or model.get_output_embeddings()
        emb = model.get_input_embeddings()
        if head is None or emb is None:
            raise UserError(f"model '{name}' exposes no output head / input embeddings: pass head=<module>")
        self.model, self._head, self._emb, self.shift, self.name = model, head, emb, shift, name
        self.mask_id = int(mask_id)
        self.vocab_size = int(head.weight.shape[0])
        self.hidden_size = int(head.weight.shape[1])
        self.embed_size = int(emb.weight.shape[1])
        self.rope_base = 10000.0
        self._fp = None
        freeze(model)
        check_adapter(self, f"model '{name}'")

    def attention(self, length: int):
        return "bidirectional"

    @torch.no_grad()
    def hidden_and_logits(self, x):
        out = self.model(input_ids=x, output_hidden_states=True)
        states = getattr(out, "hidden_states", None)
        if not states:
            raise UserError(f"model '{self.name}' returned no hidden_states: ADJUST needs the last hidden state")
        h, logits = states[-1].float(), out.logits.float()
        if self.shift:  # position i is predicted from position i - 1
            h, logits = torch.cat([h[:, :1], h[:, :-1]], 1), torch.cat([logits[:, :1], logits[:, :-1]], 1)
        return h, logits

    def embed_tokens(self, x):
        return self._emb(x).float()

    def head(self, h):
        return self._head(h.to(self._head.weight.dtype)).float()

    def fingerprint(self) -> str:
        if self._fp is None:
            self._fp = weights_fingerprint(self.model, "hf", self.name, str(self.shift))
        return self._fp

    def to(self, device):
        self.model.to(device)
        return self


def freeze(model: torch.nn.Module) -> None:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)


@torch.no_grad()
def check_adapter(adapter, what: str) -> None:
    """Probe: hidden states exist, have the declared width, and the head maps them to the returned logits."""
    device = next(adapter.model.parameters()).device
    x = torch.full((1, 4), adapter.mask_id, dtype=torch.long, device=device)
    h, logits = adapter.hidden_and_logits(x)
    if h is None or h.dim() != 3 or h.shape[-1] != adapter.hidden_size:
        raise UserError(f"{what}: hidden states of width {adapter.hidden_size} are needed by ADJUST, got "
                        f"{None if h is None else tuple(h.shape)}: use a base that returns its last hidden state")
    again = adapter.head(h)
    if again.shape != logits.shape or not torch.allclose(again, logits, atol=1e-3, rtol=1e-3):
        raise UserError(f"{what}: the output head applied to the hidden states does not give the model's logits, "
                        "so the sampler cannot reuse the head: pass the module that maps the last hidden state "
                        "to logits (head=...)")
    if not 0 <= adapter.mask_id < logits.shape[-1]:
        raise UserError(f"{what}: mask id {adapter.mask_id} is outside the vocabulary ({logits.shape[-1]})")


def masked_log_probs(logits: torch.Tensor, mask_id: int) -> torch.Tensor:
    """logits [B, L, V] -> float32 log-probs with the MASK token removed."""
    logits = logits.float().index_fill(-1, torch.tensor([mask_id], device=logits.device), NEG_INF)
    return F.log_softmax(logits, dim=-1)


def pick_lowest_entropy(log_probs: torch.Tensor, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log_probs: [B, L, V] float32, allowed: [B, L] bool -> (position [B] long, its entropy [B]; inf if none).
    Entropies only rank positions, so they are computed in the log-probs' precision; draws are float64."""
    p = log_probs.exp()
    ent = -torch.where(p > 0, p * log_probs, torch.zeros_like(p)).sum(-1)
    ent = ent.masked_fill(~allowed, float("inf"))
    best, pos = ent.min(dim=1)
    return pos, best


def draw_at(x, log_probs, pos, rows_on, generator, options) -> None:
    """Sample x[b, pos[b]] from its marginal log_probs[b, pos[b]] (float64) for rows with rows_on[b]; in place."""
    rows = torch.arange(x.shape[0], device=x.device)
    from ..sampling.base import ban

    picked = ban(log_probs[rows, pos], getattr(options, "banned_ids", ()))
    tok = sample_categorical(picked, generator, options.temperature, options.top_p).to(x.device)
    x[rows[rows_on], pos[rows_on]] = tok[rows_on]


@torch.no_grad()
def joint_decode(adapter, x, fixed, generator, options, tokens_per_pass: int = 1, sampler=None,
                 threshold: float | None = None, trace=None, on_pass=None):
    """Per full pass, K picks of the lowest-entropy masked position, each sampled from its current marginal;
    between picks the `sampler` (emb [B, L, E], h [B, L, H], attn) -> h updates the logits (None: marginal
    baseline, the logits stay those of the full pass). `threshold`: adaptive K, a pass stops picking in a row once
    its next pick's entropy exceeds it (the first pick of a pass is always made). Block bases (BD3-LM) decode
    block by block on the prefix. `on_pass(count [B], h [B, view, H])` sees every full pass (count = picks made
    so far per row). x, fixed: [B, L]. Returns (tokens, order [B, L] (-1 pad), nfe, sampler_passes)."""
    if tokens_per_pass < 1:
        raise UserError(f"tokens_per_pass={tokens_per_pass}: must be >= 1 (1 = one token per full pass)")
    batch, length = x.shape
    mask_id = adapter.mask_id
    x = torch.where(fixed, x, torch.full_like(x, mask_id))
    order = torch.full_like(x, -1)
    count = torch.zeros(batch, dtype=torch.long, device=x.device)
    block = getattr(adapter, "block_size", None) or length
    nfe = passes = 0
    for start in range(0, length, block):
        end = min(length, start + block)
        view = end if block < length else length
        xv = x[:, :view]  # a view: writes land in x
        free = ~fixed[:, :view]
        free[:, :start] = False
        while True:
            allowed = (xv == mask_id) & free
            if not allowed.any():
                break
            h, logits = adapter.hidden_and_logits(xv)
            nfe += 1
            if on_pass is not None:
                on_pass(count.clone(), h)
            lp = masked_log_probs(logits, mask_id)
            active = allowed.any(1)
            attn = adapter.attention(view) if sampler is not None else None
            for j in range(tokens_per_pass):
                pos, ent = pick_lowest_entropy(lp, allowed)
                if threshold is not None and j > 0:
                    active = active & (ent <= threshold)
                    if not active.any():
                        break
                draw_at(xv, lp, pos, active, generator, options)
                on = torch.nonzero(active).squeeze(1)
                order[on, count[on]] = pos[on]
                count += active.long()
                allowed[on, pos[on]] = False
                if trace is not None:
                    trace(x.clone())
                active = active & allowed.any(1)
                if j == tokens_per_pass - 1 or not active.any():
                    break
                if sampler is not None:
                    h = sampler(adapter.embed_tokens(xv), h, attn)
                    lp = masked_log_probs(adapter.head(h), mask_id)
                    passes += 1
    return x, order, nfe, passes


# ---- recorded trajectories -------------------------------------------------------------------------------

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
    from ..sampling.base import SamplingOptions

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
        gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
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
