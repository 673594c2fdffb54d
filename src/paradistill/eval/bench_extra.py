"""Pieces of the speed benchmark beyond the project's own generation paths: the `transformers` GPT-2 `generate`
baseline (what a user types), the sampler's work outside the forward pass, and the cache-resident bandwidth that
bounds a KV-cached AR step when the weights fit in the last-level cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from ..diffusion.mdlm import subs_log_probs
from ..models.transformer import ModelConfig, Transformer
from ..sampling.base import Denoiser, SamplingOptions
from ..sampling.registry import build_sampler
from .bench import bench_model
from .bench_device import timed, torch_dtype


def last_level_cache_bytes() -> int | None:
    """Size of the CPU's largest cache (Linux sysfs), None where unknown."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    best = None
    try:
        for index in base.glob("index*"):
            text = (index / "size").read_text().strip()
            mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1], 1)
            size = int(text.rstrip("KMG")) * mult
            best = size if best is None else max(best, size)
    except (OSError, ValueError):
        return None
    return best


@dataclass
class HFCase:
    """`transformers` GPT-2 of the benchmark's size (random weights, built from a GPT2Config), sampled with
    `model.generate(do_sample=True)` and its default KV cache; one pass per new token."""

    model: Any
    bos_id: int
    kind: str = "hf-gpt2"

    @classmethod
    def build(cls, cfg: ModelConfig, max_len: int, bos_id: int, device="cpu", dtype: str = "float32") -> "HFCase":
        torch.manual_seed(0)
        hf = GPT2Config(vocab_size=cfg.vocab_size, n_embd=cfg.dim, n_layer=cfg.n_layers, n_head=cfg.n_heads,
                        n_inner=int(cfg.mlp_ratio * cfg.dim), n_positions=max_len, bos_token_id=bos_id,
                        eos_token_id=bos_id, tie_word_embeddings=True)
        return cls(GPT2LMHeadModel(hf).eval().to(device=device, dtype=torch_dtype(dtype)), bos_id)

    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @torch.no_grad()
    def run(self, batch: int, length: int, seed: int = 0) -> dict[str, Any]:
        torch.manual_seed(seed)
        prompt = torch.full((batch, 1), self.bos_id, dtype=torch.long, device=self.model.device)
        out = self.model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, top_k=0,
                                  top_p=1.0, max_new_tokens=length - 1, min_new_tokens=length - 1,
                                  pad_token_id=self.bos_id)
        return {"tokens": out, "nfe": length - 1}


def _state(sampler, model, x, mask_id):
    fixed = x != mask_id
    return sampler.init(x, fixed, Denoiser(model, mask_id), torch.Generator().manual_seed(0), 16, SamplingOptions())


class _Replay(torch.nn.Module):
    """Stands in for the backbone with its logits computed beforehand: a sampler step over it costs only the
    sampler's own work (SUBS, scores, draws) plus one copy of the rows it asks for."""

    def __init__(self, model: Transformer, logits: torch.Tensor):
        super().__init__()
        self.cfg, self.logits = model.cfg, logits

    def forward(self, idx, logits_at=None, **_):
        return SimpleNamespace(logits=self.logits.clone() if logits_at is None else self.logits[logits_at])


@torch.no_grad()
def sampler_overhead(cfg: ModelConfig, length: int, batch: int, rounds: int, masked_fraction: float = 0.5,
                     samplers: tuple[str, ...] = ("ancestral", "confidence", "threshold"), device="cpu",
                     dtype: str = "float32") -> dict[str, Any]:
    """The sampler's work in one step against the forward pass at the masked rows, interleaved over `rounds`, at a
    state with `masked_fraction` of the positions masked (ancestral: T = 16 from t = 1). The sampler's work is
    timed on a replay of precomputed logits (`_Replay`), so a sampler that asks the head for fewer rows is not
    credited with the forward time it saves; the whole step with the real model is timed too. Also the
    pre-issue-27 path: the full [B, L, V] log-softmax. `device` / `dtype`: the model's (a GPU is synchronized
    around every timed call)."""
    model = bench_model(cfg, device, dtype)
    mask_id = 3
    g = torch.Generator().manual_seed(0)
    x = torch.randint(4, cfg.vocab_size, (batch, length), generator=g)
    x[torch.rand(batch, length, generator=g) < masked_fraction] = mask_id
    x = x.to(device)
    where = x == mask_id
    built = {name: build_sampler(name) for name in samplers}
    fns = {"forward (head at masked rows)": lambda: model(x, attn="bidirectional", logits_at=where),
           "forward (head everywhere)": lambda: model(x, attn="bidirectional"),
           "full SUBS log-softmax (old path)": None}
    full_logits = model(x, attn="bidirectional").logits
    replay = _Replay(model, full_logits)
    fns["full SUBS log-softmax (old path)"] = lambda: subs_log_probs(full_logits, x, mask_id)[where]
    for name, sampler in built.items():
        fns[f"step: {name}"] = (lambda s=sampler: s.step(_state(s, model, x.clone(), mask_id)))
        fns[f"sampler work: {name}"] = (lambda s=sampler: s.step(_state(s, replay, x.clone(), mask_id)))
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timed(fn, device)[0])
    fwd = times["forward (head at masked rows)"]
    out = {"length": length, "batch": batch, "vocab_size": cfg.vocab_size, "masked_fraction": masked_fraction,
           "seconds": {k: sorted(v)[len(v) // 2] for k, v in times.items()}, "overhead": {}}
    for name in built:
        paired = sorted(w / f for w, f in zip(times[f"sampler work: {name}"], fwd))
        out["overhead"][name] = {"median": paired[len(paired) // 2], "min": paired[0], "max": paired[-1]}
    old = sorted(o / f for o, f in zip(times["full SUBS log-softmax (old path)"], times["forward (head everywhere)"]))
    out["old_logsoftmax_over_forward"] = {"median": old[len(old) // 2], "min": old[0], "max": old[-1]}
    return out
