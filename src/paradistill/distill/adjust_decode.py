"""ADJUST decoding: one full pass of the frozen base, then up to K picks, each at the lowest-entropy masked
position, with the sampler layer re-run after each pick (K = 1 is exact one-token-per-pass sampling; without a
sampler layer the picks use the full pass's marginals). Shared by trajectory recording and inference."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..diffusion.mdlm import NEG_INF
from ..errors import UserError
from ..sampling.base import ban
from ..sampling.categorical import sample_categorical


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


def pick_most_confident(log_probs: torch.Tensor, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log_probs: [B, L, V], allowed: [B, L] bool -> (position [B] of the highest top probability, that
    probability [B]; -inf if none)."""
    top = log_probs.max(-1).values.exp().masked_fill(~allowed, float("-inf"))
    best, pos = top.max(dim=1)
    return pos, best


def draw_at(x, log_probs, pos, rows_on, generator, options) -> None:
    """Sample x[b, pos[b]] from its marginal log_probs[b, pos[b]] (float64) for rows with rows_on[b]; in place."""
    rows = torch.arange(x.shape[0], device=x.device)

    picked = ban(log_probs[rows, pos], getattr(options, "banned_ids", ()))
    tok = sample_categorical(picked, generator, options.temperature, options.top_p).to(x.device)
    x[rows[rows_on], pos[rows_on]] = tok[rows_on]


@torch.no_grad()
def joint_decode(adapter, x, fixed, generator, options, tokens_per_pass: int = 1, sampler=None,
                 threshold: float | None = None, trace=None, on_pass=None, confidence: float | None = None):
    """Per full pass, K picks of the lowest-entropy masked position, each sampled from its current marginal;
    between picks the `sampler` (emb [B, L, E], h [B, L, H], attn) -> h updates the logits (None: marginal
    baseline, the logits stay those of the full pass). `threshold`: adaptive K, a pass stops picking in a row once
    its next pick's entropy exceeds it (the first pick of a pass is always made). `confidence` (ADJUST +
    threshold): picks go to the most confident position instead, and a pass stops picking in a row once the
    next pick's top probability is below it. Block bases (BD3-LM) decode
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
                if confidence is None:
                    pos, ent = pick_lowest_entropy(lp, allowed)
                else:
                    pos, top = pick_most_confident(lp, allowed)
                if threshold is not None and j > 0:
                    active = active & (ent <= threshold)
                if confidence is not None and j > 0:
                    active = active & (top >= confidence)
                if j > 0 and not active.any():
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
