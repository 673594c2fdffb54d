"""Autoregressive generation with a preallocated KV cache (or, for comparison, full recomputation)."""

from __future__ import annotations

import time

import torch

from ..errors import UserError
from .base import SampleResult, SamplingOptions
from .categorical import sample_categorical


@torch.no_grad()
def generate_ar(model, prompt: torch.Tensor, length: int, generator: torch.Generator,
                options: SamplingOptions | None = None, use_cache: bool = True,
                banned_ids: tuple[int, ...] = (), progress: bool = False) -> SampleResult:
    """prompt: [B, P] long (P >= 1, e.g. BOS) -> tokens [B, length]. NFE = forward passes made."""
    options = options or SamplingOptions()
    options.validate()
    bsz, plen = prompt.shape
    if plen < 1:
        raise UserError("autoregressive generation needs a prompt of at least one token (e.g. BOS)")
    if plen > length:
        raise UserError(f"prompt has {plen} tokens but the sequence length is {length}: shorten the prompt")
    start = time.perf_counter()
    x = torch.empty(bsz, length, dtype=torch.long, device=prompt.device)
    x[:, :plen] = prompt
    banned = torch.tensor(list(banned_ids), dtype=torch.long, device=prompt.device)
    cache = model.new_cache(bsz, length) if use_cache else None
    nfe = 0
    logits = None
    positions = range(plen, length)
    if progress:
        from tqdm.auto import tqdm

        positions = tqdm(positions, desc="sampling (ar)", leave=False)
    for i in positions:
        if cache is None:
            logits = model(x[:, :i], attn="causal").logits[:, -1]
            nfe += 1
        elif logits is None:
            logits = model(x[:, :i], attn="causal", cache=cache, cache_write=True).logits[:, -1]
            nfe += 1
        if banned.numel():
            logits = logits.index_fill(-1, banned, float("-inf"))
        x[:, i] = sample_categorical(logits, generator, options.temperature, options.top_p)
        if cache is not None and i + 1 < length:
            logits = model(x[:, i:i + 1], attn="causal", cache=cache, cache_write=True).logits[:, -1]
            nfe += 1
    return SampleResult(x, nfe, time.perf_counter() - start)
