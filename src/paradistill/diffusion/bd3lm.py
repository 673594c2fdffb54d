"""Block diffusion (BD3-LM; Arriola et al. 2025): autoregressive over blocks of size B, masked diffusion within.

Training runs in one forward pass over `[x_t ; x0]` (length 2L, positions `0..L-1` twice) with the block mask
of `block_attention_mask`: x_t block b sees x_t block b and x0 blocks < b; x0 block b sees x0 blocks <= b.
One diffusion time per block (antithetic over batch x blocks); the NELBO is read off the x_t half only.
`B = L` is MDLM, `B = 1` at t = 1 is next-token prediction. Sampling (KV cache of clean blocks):
sampling/bd3lm.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UserError
from .mdlm import nelbo_terms, q_sample, sample_times
from .objectives import DiffusionConfig, keep_positions
from .schedules import build_schedule


def check_block_size(block_size: int, length: int | None = None, what: str = "block_size") -> None:
    """UserError unless 1 <= block_size and block_size divides `length` (when given)."""
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1:
        raise UserError(f"{what}={block_size!r}: must be an integer >= 1 (1 = autoregressive, L = MDLM)")
    if length is not None and length % block_size:
        divisors = [d for d in (1, 2, 4, 8, 16, 32, 64, 128, 256) if length % d == 0]
        raise UserError(f"{what}={block_size} does not divide the sequence length {length}: pick a divisor "
                        f"of {length} (e.g. {', '.join(map(str, divisors[-4:]))})")


def block_ids(length: int, block_size: int, device=None) -> torch.Tensor:
    """[length] long: the block index of every position."""
    return torch.arange(length, device=device) // block_size


def block_attention_mask(length: int, block_size: int, device=None) -> torch.Tensor:
    """[2L, 2L] bool (True = may attend) for the input `[x_t ; x0]`.

    Query in x_t block b: keys of x_t block b and of x0 blocks < b. Query in x0 block b: keys of x0 blocks <= b.
    """
    check_block_size(block_size, length)
    blk = block_ids(length, block_size, device)
    q, k = blk[:, None], blk[None, :]
    xt_xt = q == k
    xt_x0 = k < q
    x0_x0 = k <= q
    x0_xt = torch.zeros_like(xt_xt)
    return torch.cat([torch.cat([xt_xt, xt_x0], 1), torch.cat([x0_xt, x0_x0], 1)], 0)


def block_causal_mask(q_positions: torch.Tensor, k_positions: torch.Tensor, block_size: int) -> torch.Tensor:
    """[Lq, Lk] bool: clean tokens attend clean keys of their own and earlier blocks."""
    return (k_positions[None, :] // block_size) <= (q_positions[:, None] // block_size)


@dataclass
class BD3Config:
    block_size: int = 4
    # Clipped training schedule t ~ U[t_min, t_max] (None: the diffusion section's, else [eps, 1]).
    # Evaluation always uses the full [eps, 1].
    t_min: float | None = None
    t_max: float | None = None

    def validate(self) -> None:
        check_block_size(self.block_size, what="bd3lm.block_size")
        lo = 1e-9 if self.t_min is None else self.t_min
        hi = 1.0 if self.t_max is None else self.t_max
        if not (0.0 < lo < hi <= 1.0):
            raise UserError(f"bd3lm.t_min={self.t_min}, bd3lm.t_max={self.t_max}: need 0 < t_min < t_max <= 1 "
                            "(e.g. t_min=0.3 t_max=0.8)")


def check_time_conditioning(model) -> None:
    if getattr(model.cfg, "time_conditioning", False):
        raise UserError("BD3-LM needs one diffusion time per block, but the backbone's time conditioning (adaLN) "
                        "takes one time per sequence: set model.time_conditioning=false for bd3lm")


def two_stream_positions(length: int, device=None) -> torch.Tensor:
    """[2L] long: positions `0..L-1` for the x_t half and again for the x0 half."""
    pos = torch.arange(length, device=device)
    return torch.cat([pos, pos])


def bd3_logits(model, xt: torch.Tensor, x0: torch.Tensor, block_size: int, mask: torch.Tensor | None = None,
               **model_kw) -> torch.Tensor:
    """xt, x0: [B, L] long -> logits of the x_t half [B, L, V] from one pass over `[x_t ; x0]`."""
    length = x0.shape[1]
    if mask is None:
        mask = block_attention_mask(length, block_size, x0.device)
    out = model(torch.cat([xt, x0], 1), attn=mask, positions=two_stream_positions(length, x0.device), **model_kw)
    return out.logits[:, :length]


class BD3Objective:
    kind = "bd3lm"

    def __init__(self, cfg: BD3Config, diffusion: DiffusionConfig, mask_id: int, pad_id: int, bos_id: int):
        cfg.validate()
        self.cfg, self.diffusion = cfg, diffusion
        self.block_size = cfg.block_size
        self.schedule = build_schedule(diffusion.schedule, diffusion.eps)
        self.mask_id, self.pad_id, self.bos_id = mask_id, pad_id, bos_id
        self._mask_cache: dict[tuple[int, str], torch.Tensor] = {}

    def trainable_parameters(self, model):
        return model.parameters()

    def attention_mask(self, length: int, device) -> torch.Tensor:
        key = (length, str(device))
        if key not in self._mask_cache:
            self._mask_cache[key] = block_attention_mask(length, self.block_size, device)
        return self._mask_cache[key]

    def block_times(self, bsz: int, length: int, generator: torch.Generator, t_min, t_max, device) -> torch.Tensor:
        """[B, L] float: one time per block, antithetic over the B * (L / block) blocks, repeated within a block."""
        check_block_size(self.block_size, length, "bd3lm.block_size")
        n_blocks = length // self.block_size
        t = sample_times(bsz * n_blocks, generator, self.diffusion.eps, self.diffusion.antithetic, t_min, t_max,
                         device=device)
        return t.view(bsz, n_blocks).repeat_interleave(self.block_size, dim=1)

    def forward_logits(self, model, xt, t, x0, generator):
        """Hook for noise-conditioned students: logits of the x_t half [B, L, V]."""
        return bd3_logits(model, xt, x0, self.block_size, self.attention_mask(x0.shape[1], x0.device))

    def terms_given(self, model, x0, xt, t, generator=None) -> torch.Tensor:
        """Per-token NELBO terms [B, L] for given x_t [B, L] and per-position times t [B, L]."""
        check_time_conditioning(model)
        logits = self.forward_logits(model, xt, t, x0, generator)
        return nelbo_terms(logits, x0, xt, t, self.schedule, self.mask_id)

    def _terms(self, model, batch, generator, t_min, t_max):
        # batch: [B, L] long
        keep = keep_positions(batch, self.pad_id, self.bos_id, self.diffusion.keep_bos)
        t = self.block_times(batch.shape[0], batch.shape[1], generator, t_min, t_max, batch.device)
        alpha, _ = self.schedule(t)
        xt = q_sample(batch, alpha, self.mask_id, generator, keep=keep)
        return self.terms_given(model, batch, xt, t, generator), ~keep

    def train_range(self) -> tuple[float | None, float | None]:
        lo = self.cfg.t_min if self.cfg.t_min is not None else self.diffusion.t_min
        hi = self.cfg.t_max if self.cfg.t_max is not None else self.diffusion.t_max
        return lo, hi

    def eval_terms(self, model, batch, generator):
        terms, counted = self._terms(model, batch, generator, None, None)  # full [eps, 1]
        return (terms * counted).sum(), counted.sum()

    def loss(self, model, batch, generator):
        terms, counted = self._terms(model, batch, generator, *self.train_range())
        loss = (terms * counted).sum() / counted.sum().clamp_min(1)
        return loss, {"loss": loss.item()}
