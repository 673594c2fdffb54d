"""Masked diffusion (MDLM): forward process, SUBS parameterisation, continuous-time NELBO."""

from __future__ import annotations

import torch
import torch.nn.functional as F

NEG_INF = -1e6  # finite "minus infinity": keeps softmax / log-softmax free of NaN


def sample_times(n: int, generator: torch.Generator, eps: float = 1e-3, antithetic: bool = True,
                 t_min: float | None = None, t_max: float | None = None, device=None) -> torch.Tensor:
    """n diffusion times mapped affinely into [eps, 1] (or [t_min, t_max] for BD3-LM's clipped schedule);
    antithetic over the batch: t_j = (u + j / n) mod 1, as upstream MDLM does."""
    if antithetic:
        u = torch.rand((), generator=generator, dtype=torch.float64)
        t = (u + torch.arange(n, dtype=torch.float64) / n) % 1.0
    else:
        t = torch.rand(n, generator=generator, dtype=torch.float64)
    lo = eps if t_min is None else t_min
    hi = 1.0 if t_max is None else t_max
    t = (lo + (hi - lo) * t).float()
    return t.to(device) if device is not None else t


def q_sample(x0: torch.Tensor, alpha: torch.Tensor, mask_id: int, generator: torch.Generator,
             keep: torch.Tensor | None = None) -> torch.Tensor:
    """x0: [B, L] long; alpha: [B] or [B, L] clean probability -> x_t with each token masked w.p. 1 - alpha.
    `keep` [B, L] bool marks positions never masked (prompts, padding)."""
    if alpha.dim() == 1:
        alpha = alpha[:, None]
    u = torch.rand(x0.shape, generator=generator).to(x0.device)
    masked = u >= alpha
    if keep is not None:
        masked &= ~keep
    return torch.where(masked, torch.full_like(x0, mask_id), x0)


def subs_log_probs(logits: torch.Tensor, xt: torch.Tensor, mask_id: int) -> torch.Tensor:
    """SUBS: logits [B, L, V], x_t [B, L] -> log-probs [B, L, V] (float32) with zero MASK probability and a
    one-hot carry-over on every unmasked position."""
    logits = logits.float().clone()
    logits[..., mask_id] = NEG_INF
    log_probs = F.log_softmax(logits, dim=-1)
    unmasked = xt != mask_id
    if unmasked.any():
        one_hot = torch.full_like(log_probs, NEG_INF)
        one_hot.scatter_(-1, xt.unsqueeze(-1), 0.0)
        log_probs = torch.where(unmasked[..., None], one_hot, log_probs)
    return log_probs


def masked_token_nll(logits: torch.Tensor, x0: torch.Tensor, mask_id: int) -> torch.Tensor:
    """-log p_theta(x0_i | x_t) under SUBS (MASK logit removed): [B, L] float32. Cheaper than building the
    full SUBS tensor; only meaningful at masked positions."""
    logits = logits.float()
    logits = logits.index_fill(-1, torch.tensor([mask_id], device=logits.device), NEG_INF)
    return F.cross_entropy(logits.transpose(1, 2), x0, reduction="none")


def nelbo_terms(logits: torch.Tensor, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, schedule,
                mask_id: int) -> torch.Tensor:
    """Per-token continuous-time NELBO terms [B, L]: weight(t) * -log p(x0 | x_t) on masked positions, else 0.
    t: [B] or [B, L] (one time per block for BD3-LM)."""
    weight = schedule.weight(t.float())
    if weight.dim() == 1:
        weight = weight[:, None]
    nll = masked_token_nll(logits, x0, mask_id)
    return torch.where(xt == mask_id, weight * nll, torch.zeros_like(nll))
