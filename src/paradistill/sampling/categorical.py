"""Categorical sampling in float64 with temperature and nucleus (top-p).

Float32 Gumbel-max truncates the noise near 16.6 and acts like a lowered temperature (Zheng et al. 2024), so
every draw here is made in float64: by inverse CDF, one float64 uniform per row against the row's cumulative
weights summed in float64 (the same law as float64 Gumbel-max, which needs V uniforms and two logarithms per
row: at a GPT-2 vocabulary that was most of a sampler step's work outside the forward pass). The weights
exp(logit - max) are computed in the input's precision (float32: relative error 1e-7; a token below e^-103 of
the most likely one has weight 0), and a weight of zero is never drawn. Inputs may be log-probs or logits.
"""

from __future__ import annotations

import torch

from ..errors import UserError


def check_sampling_options(temperature: float, top_p: float) -> None:
    if not temperature > 0:
        raise UserError(f"temperature={temperature}: must be > 0 (use a small value such as 0.1 for near-greedy)")
    if not 0 < top_p <= 1:
        raise UserError(f"top_p={top_p}: must be in (0, 1] (1 disables nucleus sampling)")


def prepare_log_probs(log_probs: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0) -> torch.Tensor:
    """[..., V] log-probs or logits -> float64 normalised log-probs after temperature and nucleus filtering."""
    check_sampling_options(temperature, top_p)
    lp = torch.log_softmax(log_probs.double() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_lp, order = lp.sort(dim=-1, descending=True)
        cum = sorted_lp.exp().cumsum(dim=-1)
        drop_sorted = (cum - sorted_lp.exp()) >= top_p  # keep the smallest prefix reaching top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        lp = torch.log_softmax(lp.masked_fill(drop, float("-inf")), dim=-1)
    return lp


def gumbel_noise(shape, generator: torch.Generator, device=None) -> torch.Tensor:
    """Standard Gumbel(0, 1) noise in float64."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    u = u.clamp_(torch.finfo(torch.float64).tiny, 1.0 - torch.finfo(torch.float64).eps)
    g = -torch.log(-torch.log(u))
    return g.to(device) if device is not None else g


def check_alg_temp(alg_temp: float | None) -> float | None:
    """Dream's alg_temp: None or 0 = deterministic choice of positions; > 0 draws them."""
    if alg_temp is None:
        return None
    if not (alg_temp >= 0 and alg_temp < float("inf")):
        raise UserError(f"--alg-temp {alg_temp}: must be >= 0 (0: the most confident positions; > 0: positions "
                        "drawn from softmax(confidence / alg_temp))")
    return float(alg_temp) or None


def position_keys(scores: torch.Tensor, alg_temp: float | None, generator: torch.Generator) -> torch.Tensor:
    """Keys for choosing which positions to unmask: their k largest are k positions drawn WITHOUT replacement with
    probabilities softmax(scores / alg_temp) (Gumbel-top-k; Dream's `alg_temp`). scores: [B, L] (-inf = not
    eligible) -> float64 keys [B, L]; alg_temp None or 0: the scores themselves (the k most confident)."""
    if not alg_temp:
        return scores
    return scores.double() / alg_temp + gumbel_noise(scores.shape, generator, scores.device)


def sample_categorical(log_probs: torch.Tensor, generator: torch.Generator, temperature: float = 1.0,
                       top_p: float = 1.0) -> torch.Tensor:
    """log_probs: [..., V] log-probs or logits -> samples [...] long, by float64 inverse CDF (one uniform a row)."""
    if top_p < 1.0:
        lp = prepare_log_probs(log_probs, temperature, top_p)
    else:
        check_sampling_options(temperature, top_p)
        lp = log_probs if log_probs.dtype in (torch.float32, torch.float64) else log_probs.float()
        if temperature != 1.0:
            lp = lp / temperature
    if lp.shape[-1] == 0:
        raise UserError("sample_categorical: an empty vocabulary (last dimension 0)")
    weights = (lp - lp.amax(-1, keepdim=True)).exp_()  # the largest weight is 1: no overflow
    cdf = weights.double().cumsum_(-1)  # accumulated in float64
    u = torch.rand(lp.shape[:-1] + (1,), generator=generator, dtype=torch.float64).to(lp.device)
    # the first index whose cumulative weight exceeds u * total (right=True: a zero weight is never chosen)
    return torch.searchsorted(cdf, u * cdf[..., -1:], right=True).squeeze(-1).clamp_max_(lp.shape[-1] - 1)


def entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of [..., V] log-probs -> [...] float64 (terms in the input's precision, summed in float64)."""
    lp = log_probs if log_probs.dtype in (torch.float32, torch.float64) else log_probs.float()
    p = lp.exp()
    return -(p * torch.where(p > 0, lp, torch.zeros_like(lp))).sum(-1, dtype=torch.float64)
