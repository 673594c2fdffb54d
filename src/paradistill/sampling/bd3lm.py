"""BD3-LM sampling: a denoiser over one block at a time that attends to a KV cache of the clean blocks before it.

`BlockwiseSampler` (blocks.py) calls `block_view(x, start, end)` for each block, runs any inner sampler on the
returned view, then `commit(x_block, start, end)`. The finished block's keys and values are written by the next
block's first denoising pass, which takes `[finished clean block ; new noisy block]` as one input (so a block
costs its denoising passes and no separate cache-writing pass). The masks reproduce training exactly
(diffusion/bd3lm.py): the noisy block sees itself and every clean position before `start`; a clean position sees
clean positions of its own and earlier blocks. With `use_cache=False` each call recomputes the clean prefix
instead: same log-probs, more work.
"""

from __future__ import annotations

import torch

from ..diffusion.bd3lm import block_causal_mask, check_block_size, check_time_conditioning
from ..diffusion.mdlm import subs_log_probs
from ..errors import UserError
from .base import Denoiser


class BD3Denoiser(Denoiser):
    """Block-diffusion denoiser. `block_size` is the trained block size (it defines the clean-prefix mask)."""

    def __init__(self, model, mask_id: int, block_size: int, use_cache: bool = True,
                 batch_size: int | None = None, length: int | None = None):
        check_time_conditioning(model)
        check_block_size(block_size)
        if length is not None and length % block_size:
            raise UserError(f"block_size={block_size} (this BD3-LM's) does not divide the sequence length {length}: "
                            f"generate a length that is a multiple of {block_size}")
        super().__init__(model, mask_id)
        self.block_size, self.use_cache = block_size, use_cache
        self.batch_size, self.length = batch_size, length
        self.cache = None
        self.tokens: torch.Tensor | None = None  # [B, L] latest context; positions < committed are cached
        self.committed = 0
        self.forward_calls = 0
        self.query_tokens = 0  # sum over passes of batch * queries
        self.attention_pairs = 0  # sum over passes of batch * queries * keys
        blocks = sum(p.numel() for p in model.blocks.parameters())
        self._token_flops = 2 * blocks + 2 * model.cfg.dim * model.cfg.vocab_size
        self._pair_flops = 4 * model.cfg.n_layers * model.cfg.dim

    # -- accounting ---------------------------------------------------------------------------------------------
    def _count(self, bsz: int, q_len: int, k_len: int) -> None:
        self.forward_calls += 1
        self.query_tokens += bsz * q_len
        self.attention_pairs += bsz * q_len * k_len

    @property
    def flops(self) -> int:
        """Forward FLOPs spent so far (matmuls: 2 * weights per token + 4 * layers * dim per attended pair)."""
        return self._token_flops * self.query_tokens + self._pair_flops * self.attention_pairs

    # -- full sequence: one bidirectional block (B = L is MDLM) ---------------------------------------------------
    @torch.no_grad()
    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # x: [B, L] long -> [B, L, V]; the whole sequence treated as one block with no clean prefix
        self._count(x.shape[0], x.shape[1], x.shape[1])
        return subs_log_probs(self.model(x, attn="bidirectional").logits, x, self.mask_id)

    def masked_log_probs(self, x: torch.Tensor, t: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        return self(x, t)[where]

    # -- blocks ---------------------------------------------------------------------------------------------------
    def block_view(self, x: torch.Tensor, start: int, end: int) -> "BD3BlockView":
        # x: [B, L] long, the current sequence; positions < start are clean and final
        if self.use_cache:
            self._sync(x, start, defer=True)
        return BD3BlockView(self, x.clone(), start, end)

    @torch.no_grad()
    def commit(self, x_block: torch.Tensor, start: int, end: int) -> None:
        # x_block: [B, end - start] long, the finished block; its keys/values are written by the next pass
        if not self.use_cache or self.tokens is None or end >= self.tokens.shape[1]:
            return  # nothing to cache without a cache, or after the last block
        full = self.tokens.clone()
        full[:, start:end] = x_block
        self._sync(full, end, defer=True)

    def _prepare(self, x: torch.Tensor) -> None:
        bsz, length = x.shape
        if self.tokens is None or self.tokens.shape[0] != bsz or self.tokens.shape[1] != length:
            self.tokens = x.clone()
            self.committed = 0
            self.cache = self.model.new_cache(bsz, max(length, self.length or 0))

    def _sync(self, x: torch.Tensor, upto: int, defer: bool = False) -> int:
        """Make the cache hold the clean prefix x[:, :upto] (rolling back where it differs). `defer`: only roll
        back and record the tokens; the caller's next pass writes the rest. Returns the cached length."""
        self._prepare(x)
        bs = self.block_size
        done = self.committed
        if done:
            same = (self.tokens[:, :done] == x[:, :done]).all(0)
            if not bool(same.all()):
                done = (int((~same).nonzero()[0]) // bs) * bs
        if upto < done or (done % bs and upto > done):
            done = (min(done, upto) // bs) * bs  # K/V of a cut block depend on its later positions
        self.tokens[:, done:] = x[:, done:]
        self.cache.length = done
        if upto > done and not defer:
            self._write(done, upto)
            done = upto
        self.committed = done
        return done

    def _write(self, a: int, b: int) -> None:
        """Forward clean tokens [a, b) against the cached [0, a) and append their keys/values."""
        pos = torch.arange(a, b, device=self.tokens.device)
        mask = torch.cat([torch.ones(b - a, a, dtype=torch.bool, device=pos.device),
                          block_causal_mask(pos, pos, self.block_size)], 1)
        self._count(self.tokens.shape[0], b - a, b)
        self.model(self.tokens[:, a:b], attn=mask, positions=pos, cache=self.cache, cache_write=True)

    @torch.no_grad()
    def block_log_probs(self, context: torch.Tensor, x_block: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """context: [B, L] (clean before `start`), x_block: [B, end - start] -> SUBS log-probs [B, end - start, V]."""
        bsz = x_block.shape[0]
        if self.use_cache:
            a = self._sync(context, start, defer=True)  # cached [0, a); clean [a, start) go into this pass
            pos = torch.arange(a, end, device=x_block.device)
            inp = torch.cat([self.tokens[:, a:start], x_block], 1) if a < start else x_block
            attn = "bidirectional"
            if a < start:
                attn = torch.cat([torch.ones(end - a, a, dtype=torch.bool, device=pos.device),
                                  prefix_block_mask(start - a, end - a, self.block_size, pos.device, offset=a)], 1)
            self._count(bsz, end - a, end)
            logits = self.model(inp, attn=attn, positions=pos, cache=self.cache,
                                cache_write=False).logits[:, start - a:]
            self.cache.length = self.committed = start  # keep the clean keys/values, drop the noisy block's
        else:
            inp = torch.cat([context[:, :start], x_block], 1)
            self._count(bsz, end, end)
            logits = self.model(inp, attn=prefix_block_mask(start, end, self.block_size, inp.device),
                                positions=torch.arange(end, device=inp.device)).logits[:, start:]
        return subs_log_probs(logits, x_block, self.mask_id)


def prefix_block_mask(start: int, end: int, block_size: int, device=None, offset: int = 0) -> torch.Tensor:
    """[end, end] bool for the input `[clean x_<start ; noisy block]` whose first row is position `offset`:
    clean rows are block-causal among the clean prefix (never seeing the noisy block); noisy rows see everything."""
    pos = torch.arange(offset, offset + end, device=device)
    mask = torch.ones(end, end, dtype=torch.bool, device=device)
    mask[:start, :start] = block_causal_mask(pos[:start], pos[:start], block_size)
    mask[:start, start:] = False
    return mask


class BD3BlockView(Denoiser):
    """The denoiser over positions [start, end) only (what the inner sampler of a block sees)."""

    def __init__(self, parent: BD3Denoiser, context: torch.Tensor, start: int, end: int):
        self.parent, self.context, self.start, self.end = parent, context, start, end
        self.model = parent.model
        self.mask_id = parent.mask_id
        self.extra = None
        self.time_conditioned = False

    def __call__(self, x_block: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # x_block: [B, end - start] long, t: [B] (unused: the backbone is time-agnostic)
        return self.parent.block_log_probs(self.context, x_block, self.start, self.end)

    def masked_log_probs(self, x_block: torch.Tensor, t: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        return self(x_block, t)[where]  # the block's pass is already block-sized


def denoiser_for(model, mask_id: int, block_size: int | None = None, use_cache: bool = True,
                 batch_size: int | None = None, length: int | None = None) -> Denoiser:
    """The denoiser of a masked model: block-wise (BD3-LM, with its KV cache) when `block_size` is given."""
    if block_size is None:
        return Denoiser(model, mask_id)
    return BD3Denoiser(model, mask_id, block_size, use_cache=use_cache, batch_size=batch_size, length=length)
