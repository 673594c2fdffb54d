"""LLaDA's low-confidence remasking (Nie et al. 2025, `generate.py` of the release), behind the sampler interface.

Each pass draws a candidate token x0 at EVERY masked position (temperature / top-p of the options), scores it by
the model's probability of that candidate, p(x0) under softmax(logits) at temperature 1, and commits only the
`count` most confident candidates; the rest stay masked ("remasked"). `count` spreads the masked positions evenly
over the steps, the remainder going to the first steps (the release's schedule: floor(n / steps), +1 for the first
n mod steps). With semi-autoregressive blocks (`--block-size`, LLaDA's block_length) the same runs block by block
(sampling/blocks.py). `score="random"` is the release's 'random' remasking (uniform scores). `alg_temp` > 0
(Dream's option, low-confidence only): the committed positions are drawn without replacement with probabilities
softmax(p(x0) / alg_temp) over the masked positions instead of taken from the top.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from .base import Sampler, SamplerState, ban
from .categorical import check_alg_temp, position_keys
from .samplers import masked_fraction


class LowConfidenceRemasking(Sampler):
    def __init__(self, score: str = "low-confidence", alg_temp: float | None = None):
        if score not in ("low-confidence", "random"):
            raise UserError(f"remasking {score!r}: choose low-confidence or random")
        self.score = score
        self.alg_temp = check_alg_temp(alg_temp)
        if self.alg_temp and score == "random":
            raise UserError("--alg-temp draws positions by confidence; random remasking has none: drop --alg-temp")
        self.name = score

    def init(self, x, fixed, denoiser, generator, steps, options):
        state = super().init(x, fixed, denoiser, generator, steps, options)
        total = state.masked.sum(1)  # [B]: the per-step counts are fixed at the start, as in the release
        k = torch.arange(steps, device=x.device)
        base, extra = total // steps, total % steps
        state.cache["counts"] = base[:, None] + (k[None, :] < extra[:, None]).long()  # [B, steps]
        return state

    def step(self, state: SamplerState) -> SamplerState:
        masked = state.masked
        log_probs = state.denoise(masked_fraction(state).to(state.x.device))  # [B, L, V]
        cand = torch.full_like(state.x, state.denoiser.mask_id)
        cand[masked] = state.draw(log_probs[masked])
        if self.score == "random":
            conf = torch.rand(state.x.shape, generator=state.generator, dtype=torch.float64).to(state.x.device)
        else:
            probs = ban(log_probs, state.options.banned_ids).double().softmax(-1)
            conf = probs.gather(-1, cand.clamp_min(0)[..., None]).squeeze(-1)
        conf = position_keys(conf.masked_fill(~masked, float("-inf")), self.alg_temp, state.generator)
        count = state.cache["counts"][:, min(state.step, state.num_steps - 1)]
        rank = conf.argsort(dim=1, descending=True, stable=True).argsort(dim=1)
        chosen = masked & (rank < count[:, None])
        state.x = torch.where(chosen, cand, state.x)
        state.step += 1
        return state
