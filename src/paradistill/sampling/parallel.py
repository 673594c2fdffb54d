"""Adaptive parallel unmasking: how many masked positions a pass commits is decided by the model's confidence.

Every pass scores the masked positions of the sequence the sampler sees (within semi-autoregressive blocks:
the current block, since `BlockwiseSampler` hands the inner sampler one block at a time) and commits
- `threshold` (Fast-dLLM's threshold rule): every position whose top probability is >= tau;
- `factor` (Fast-dLLM's factor rule): with the confidences sorted c_1 >= c_2 >= ..., the leading n positions
  for which c_k >= 1 - f / (k + 1) holds for every k <= n (a larger f commits more);
- `eb` (entropy-bounded, after the EB-sampler): positions sorted by entropy H_1 <= H_2 <= ..., the largest
  prefix whose entropies beyond the largest one sum to at most gamma: sum_{k<=n} H_k - H_n <= gamma;
and always at least the most confident one per row, so a row with masked positions always progresses and
tau -> 1 (f, gamma -> 0) is one token per pass, tau -> 0 (large f, gamma) fills everything in one pass.
Committed tokens are drawn from their marginals with the state's temperature / top-p (float64). The number of
passes is not fixed in advance (at most the number of masked positions); `steps` is ignored.
"""

from __future__ import annotations

import math

import torch

from ..errors import UserError
from .base import Sampler, SamplerState
from .categorical import entropy
from .samplers import masked_fraction

RULES = {"threshold": "confidence >= tau", "factor": "Fast-dLLM factor rule with f = tau",
         "eb": "entropy-bounded with gamma = tau (nats)"}


def select_rows(rule: str, value: float, scores: torch.Tensor) -> torch.Tensor:
    """scores: [B, L] float64, -inf where not masked (confidence; for `eb` minus the entropy) -> [B, L] bool."""
    masked = torch.isfinite(scores)
    order = scores.argsort(dim=1, descending=True)
    ranked = scores.gather(1, order)  # best first; -inf last
    k = torch.arange(1, scores.shape[1] + 1, device=scores.device, dtype=torch.float64)[None]
    if rule == "threshold":
        ok = ranked >= value
    elif rule == "factor":
        ok = ranked >= 1.0 - value / (k + 1.0)
    else:  # eb: entropies ascending, cumulative sum minus the current (largest) one
        ent = -ranked
        ok = (torch.where(torch.isfinite(ent), ent, 0.0).cumsum(1) - ent) <= value
    ok = ok & torch.isfinite(ranked)
    ok[:, 0] = torch.isfinite(ranked[:, 0])  # at least one per row with a masked position
    ok = ok.long().cumprod(1).bool()  # a leading run: stop at the first failure
    chosen = torch.zeros_like(masked)
    chosen.scatter_(1, order, ok)
    return chosen & masked


class ThresholdSampler(Sampler):
    """Confidence-threshold parallel decoding (`rule` in RULES, `value` = tau / f / gamma)."""

    def __init__(self, rule: str = "threshold", value: float = 0.9):
        if rule not in RULES:
            raise UserError(f"threshold rule {rule!r}: choose one of {', '.join(RULES)}")
        if not isinstance(value, (int, float)) or math.isnan(value):
            raise UserError(f"--threshold {value!r}: must be a number")
        if rule == "threshold" and not 0.0 <= value <= 1.0:
            raise UserError(f"--threshold {value}: a confidence threshold tau must be in [0, 1] (e.g. 0.9)")
        if rule != "threshold" and value < 0:
            raise UserError(f"--threshold {value}: the {rule} rule's parameter must be >= 0")
        self.rule, self.value = rule, float(value)
        self.name = f"{rule}({value:g})"

    def init(self, x, fixed, denoiser, generator, steps, options):
        state = super().init(x, fixed, denoiser, generator, max(steps, 1), options)
        state.num_steps = max(int(state.masked.sum(1).max().item()), 1)  # one per pass at worst
        return state

    def step(self, state: SamplerState) -> SamplerState:
        masked = state.masked
        log_probs = state.denoise_at(masked_fraction(state).to(state.x.device))  # [N, V]
        if self.rule == "eb":
            score = -entropy(log_probs)
        else:
            score = log_probs.amax(-1).double().exp()
        scores = torch.full(masked.shape, float("-inf"), dtype=torch.float64, device=masked.device)
        scores[masked] = score.to(scores.device)
        chosen = select_rows(self.rule, self.value, scores)
        if chosen.any():
            state.x = state.x.masked_scatter(chosen, state.draw(log_probs[chosen[masked]]))
        state.step += 1
        return state
