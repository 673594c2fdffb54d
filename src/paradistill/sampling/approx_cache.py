"""Block-wise approximate KV caches for full-attention masked models (Fast-dLLM's prefix and dual caches).

A full-attention MDLM has no exact KV cache: every key depends on every token, masked ones included. Under
semi-autoregressive block decoding (`BlockwiseSampler`) the keys and values change little within a block, so:
- the first pass of each block is a full pass that also stores every position's keys and values (the
  refresh: the blocks finished so far enter with their final tokens, i.e. the cache is refreshed at each block's
  end);
- `prefix`: later passes of the block run the block and the masked suffix after it, attending to the cached
  keys / values of the finished prefix;
- `dual`: later passes run the block alone, attending to the cached prefix AND the cached (masked) suffix.
`refresh_every=k` also refreshes every k-th pass inside a block (k = 1: every pass is a full pass, exactly the
uncached denoiser). BD3-LM keeps its exact cache (sampling/bd3lm.py). Counts: `full_passes`, `cached_passes`,
`query_tokens` (sum of batch x query positions, the work a pass does).
"""

from __future__ import annotations

import torch

from ..diffusion.mdlm import subs_log_probs
from ..errors import UserError
from .base import Denoiser, subs_rows

CACHE_MODES = ("prefix", "dual")


class BlockCachedDenoiser(Denoiser):
    """`model`: a full-attention masked model (MDLM, or a Gumbel student wrapped in its noise) -> block views
    with an approximate KV cache."""

    def __init__(self, model, mask_id: int, mode: str = "prefix", refresh_every: int | None = None):
        if mode not in CACHE_MODES:
            raise UserError(f"block cache {mode!r}: choose one of {', '.join(CACHE_MODES)}")
        if refresh_every is not None and refresh_every < 1:
            raise UserError(f"refresh_every={refresh_every}: must be >= 1 (1 = refresh every pass = no cache)")
        super().__init__(model, mask_id)
        self.mode, self.refresh_every = mode, refresh_every
        self.cache = None
        self.full_passes = self.cached_passes = self.query_tokens = 0

    def block_view(self, x: torch.Tensor, start: int, end: int) -> "CachedBlockView":
        return CachedBlockView(self, x, start, end)

    def kv_cache(self, bsz: int, length: int):
        if self.cache is None or self.cache.k.shape[1] != bsz or self.cache.max_len != length:
            self.cache = self.model.new_cache(bsz, length)
        return self.cache


class CachedBlockView(Denoiser):
    """The denoiser over positions [start, end) of the sequence (what the inner sampler of a block sees)."""

    def __init__(self, parent: BlockCachedDenoiser, x: torch.Tensor, start: int, end: int):
        self.parent, self.context, self.start, self.end = parent, x.clone(), start, end
        self.model, self.mask_id, self.extra = parent.model, parent.mask_id, None
        self.time_conditioned = parent.time_conditioned
        self.passes = 0

    @torch.no_grad()
    def _logits(self, x_block: torch.Tensor, t: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """x_block: [B, end - start], where: [B, end - start] bool -> logits [N, V] at `where`."""
        p, (s, e) = self.parent, (self.start, self.end)
        full = self.context.clone()
        full[:, s:e] = x_block
        bsz, length = full.shape
        sigma = t if self.time_conditioned else None
        every = p.refresh_every
        refresh = self.passes == 0 or (every is not None and self.passes % every == 0)
        self.passes += 1
        cache = p.kv_cache(bsz, length)
        if refresh:  # a full pass that (re)writes every position's keys / values
            cache.length, cache.extent = 0, None
            at = torch.zeros_like(full, dtype=torch.bool)
            at[:, s:e] = where
            out = self.model(full, attn="bidirectional", sigma=sigma, cache=cache, cache_write=True,
                             positions=torch.arange(length, device=full.device), logits_at=at)
            p.full_passes += 1
            p.query_tokens += bsz * length
            return out.logits
        cache.length = s  # keys / values before the block are reused; the pass writes its own after them
        if p.mode == "prefix":
            inp, at = full[:, s:], torch.zeros(bsz, length - s, dtype=torch.bool, device=full.device)
            at[:, : e - s] = where
        else:
            inp, at = x_block, where
            cache.extent = length  # also attend to the cached suffix [e, L)
        try:
            out = self.model(inp, attn="bidirectional", sigma=sigma, cache=cache, cache_write=False,
                             positions=torch.arange(s, s + inp.shape[1], device=full.device), logits_at=at)
        finally:
            cache.extent = None
        p.cached_passes += 1
        p.query_tokens += bsz * inp.shape[1]
        return out.logits

    def __call__(self, x_block: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # x_block: [B, end - start] long -> SUBS log-probs [B, end - start, V]
        where = torch.ones_like(x_block, dtype=torch.bool)
        logits = self._logits(x_block, t, where).view(*x_block.shape, -1)
        return subs_log_probs(logits, x_block, self.mask_id)

    def masked_log_probs(self, x_block: torch.Tensor, t: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        return subs_rows(self._logits(x_block, t, where), x_block[where], self.mask_id)

    def block_view(self, x, start, end):
        raise UserError("a block-cached view cannot be split into smaller blocks: use one --block-size")
