"""Masked-diffusion samplers behind the one interface of base.py.

- ancestral: from t to s, a masked position is unmasked with probability (alpha_s - alpha_t) / (1 - alpha_t)
  (log-linear: (t - s) / t) and then drawn from p_theta(. | x_t). With `cache=True` (default) the positions
  that unmask are drawn first, and the forward pass runs only when there are some, its output head and the
  token draws only at them: a step where nothing unmasks costs no pass (MDLM's prediction caching, exact for
  any model since a prediction nobody draws from is never needed); `cache=False` runs a pass every step.
- first-hitting: one uniformly chosen masked position per forward pass (exact for the model's joint in a
  random order when the model is time-agnostic).
- confidence / entropy / margin: per pass the masked positions with the highest max-probability (lowest
  entropy, largest top-2 margin) are drawn from their marginals, ceil(remaining / steps left) of them. With
  `alg_temp` > 0 (Dream's) those positions are drawn instead, without replacement, with probabilities
  softmax(score / alg_temp) over the masked positions.
"""

from __future__ import annotations

import math

import torch

from ..diffusion.schedules import LogLinear
from ..errors import UserError
from .base import Sampler, SamplerState
from .categorical import check_alg_temp, entropy, position_keys


def masked_fraction(state: SamplerState) -> torch.Tensor:
    """[B] fraction of the free positions still masked: the time seen by a time-conditioned model."""
    free = (~state.fixed).sum(1).clamp_min(1)
    return (state.masked.sum(1) / free).float().clamp_min(1e-3)


class AncestralSampler(Sampler):
    name = "ancestral"

    def __init__(self, cache: bool = True, schedule=None):
        self.cache = cache
        self.schedule = schedule or LogLinear()
        if not cache:
            self.name = "ancestral-nocache"

    def step(self, state: SamplerState) -> SamplerState:
        steps, k = state.num_steps, state.step
        bsz = state.x.shape[0]
        t = torch.full((bsz,), 1.0 - k / steps, dtype=torch.float64)
        s = torch.full((bsz,), 1.0 - (k + 1) / steps, dtype=torch.float64)
        alpha_t, _ = self.schedule(t)
        alpha_s, _ = self.schedule(s) if k + 1 < steps else (torch.ones_like(s), None)
        p_unmask = ((alpha_s - alpha_t) / (1.0 - alpha_t)).clamp(0.0, 1.0)  # [B]
        masked = state.masked
        # which positions unmask does not depend on the prediction: draw it first (float64 uniforms over [B, L])
        u = torch.rand(state.x.shape, generator=state.generator, dtype=torch.float64).to(state.x.device)
        unmask = masked & (u < p_unmask[:, None].to(u.device))
        t = t.float().to(state.x.device)
        if not self.cache:  # the reference rule: a forward pass every step, over every masked position
            log_probs = state.denoise_at(t)[unmask[masked]]
        elif unmask.any():  # a pass only when some position unmasks, the head and the draws only there
            log_probs = state.denoise_at(t, unmask)
        if unmask.any():
            state.x = state.x.masked_scatter(unmask, state.draw(log_probs))
        state.step += 1
        return state


class FirstHittingSampler(Sampler):
    """Unmasks exactly one uniformly chosen masked position per row per forward pass."""

    name = "first-hitting"

    def init(self, x, fixed, denoiser, generator, steps, options):
        state = super().init(x, fixed, denoiser, generator, max(steps, 1), options)
        state.num_steps = int(state.masked.sum(1).max().item())  # NFE = number of masked tokens
        return state

    def step(self, state: SamplerState) -> SamplerState:
        masked = state.masked
        t = masked_fraction(state).to(state.x.device)
        scores = torch.rand(state.x.shape, generator=state.generator, dtype=torch.float64).to(state.x.device)
        scores = scores.masked_fill(~masked, -1.0)
        pos = scores.argmax(1)  # [B] a uniform masked position per row
        rows = masked.any(1).nonzero().squeeze(1)
        chosen = torch.zeros_like(masked)
        chosen[rows, pos[rows]] = True
        log_probs = state.denoise_at(t, chosen)  # [rows, V]: the one position per row that is drawn
        if rows.numel():
            tokens = state.draw(log_probs)
            state.x[rows, pos[rows]] = tokens
        state.step += 1
        return state


class ConfidenceSampler(Sampler):
    """MaskGIT / LLaDA / Dream-style parallel decoding ordered by confidence, entropy or margin."""

    def __init__(self, score: str = "confidence", tokens_per_step: int | None = None, alg_temp: float | None = None):
        if score not in ("confidence", "entropy", "margin"):
            raise UserError(f"score={score!r}: choose confidence, entropy or margin")
        if tokens_per_step is not None and tokens_per_step < 1:
            raise UserError(f"tokens_per_step={tokens_per_step}: must be >= 1")
        self.score, self.tokens_per_step = score, tokens_per_step
        self.alg_temp = check_alg_temp(alg_temp)
        self.name = score

    def init(self, x, fixed, denoiser, generator, steps, options):
        state = super().init(x, fixed, denoiser, generator, steps, options)
        if self.tokens_per_step is not None:
            state.num_steps = math.ceil(int(state.masked.sum(1).max().item()) / self.tokens_per_step)
        return state

    def _scores(self, log_probs: torch.Tensor) -> torch.Tensor:
        if self.score == "entropy":
            return -entropy(log_probs)
        if self.score == "confidence":  # one pass over [N, V]: the row maximum
            return log_probs.amax(-1).double().exp()
        top = log_probs.topk(2, dim=-1).values.double().exp()  # exp is monotone: rank first, exp two values
        return top[..., 0] - top[..., 1]

    def step(self, state: SamplerState) -> SamplerState:
        masked = state.masked
        remaining = masked.sum(1)  # [B]
        steps_left = max(state.num_steps - state.step, 1)
        if self.tokens_per_step is not None:
            count = remaining.clamp(max=self.tokens_per_step)
        else:
            count = torch.div(remaining + steps_left - 1, steps_left, rounding_mode="floor")
        log_probs = state.denoise_at(masked_fraction(state).to(state.x.device))  # [N, V] at masked positions
        scores = torch.full(masked.shape, float("-inf"), dtype=torch.float64, device=masked.device)
        scores[masked] = self._scores(log_probs).double()
        scores = position_keys(scores, self.alg_temp, state.generator)
        rank = scores.argsort(dim=1, descending=True).argsort(dim=1)
        chosen = masked & (rank < count[:, None])
        if chosen.any():
            state.x = state.x.masked_scatter(chosen, state.draw(log_probs[chosen[masked]]))
        state.step += 1
        return state
