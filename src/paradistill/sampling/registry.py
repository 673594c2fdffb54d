"""Build samplers by name (the CLI's --sampler): one registry entry per name."""

from __future__ import annotations

from typing import Callable

from ..config import closest_hint
from ..errors import UserError
from .blocks import BlockwiseSampler
from .categorical import check_alg_temp
from .parallel import ThresholdSampler
from .remasking import LowConfidenceRemasking
from .samplers import AncestralSampler, ConfidenceSampler, FirstHittingSampler

# default parameter of each adaptive rule when --threshold is not given
THRESHOLD_DEFAULTS = {"threshold": 0.9, "factor": 1.0, "eb": 0.1}


def _adaptive(rule: str) -> Callable:
    def build(tokens_per_step, threshold):
        return ThresholdSampler(rule, THRESHOLD_DEFAULTS[rule] if threshold is None else threshold)
    return build


REGISTRY: dict[str, Callable] = {
    "ancestral": lambda tokens_per_step, threshold: AncestralSampler(cache=True),
    "ancestral-nocache": lambda tokens_per_step, threshold: AncestralSampler(cache=False),
    "first-hitting": lambda tokens_per_step, threshold: FirstHittingSampler(),
    "confidence": lambda tokens_per_step, threshold: ConfidenceSampler("confidence", tokens_per_step),
    "entropy": lambda tokens_per_step, threshold: ConfidenceSampler("entropy", tokens_per_step),
    "margin": lambda tokens_per_step, threshold: ConfidenceSampler("margin", tokens_per_step),
    "threshold": _adaptive("threshold"),
    "factor": _adaptive("factor"),
    "eb": _adaptive("eb"),
    "low-confidence": lambda tokens_per_step, threshold: LowConfidenceRemasking("low-confidence"),  # LLaDA's
    "random-remasking": lambda tokens_per_step, threshold: LowConfidenceRemasking("random"),
}
SAMPLERS = tuple(REGISTRY)
THRESHOLD_SAMPLERS = tuple(THRESHOLD_DEFAULTS)
ALG_TEMP_SAMPLERS = ("confidence", "entropy", "margin", "low-confidence")  # rank positions by a confidence score


def build_sampler(name: str, block_size: int | None = None, tokens_per_step: int | None = None,
                  eos_id: int | None = None, pad_id: int | None = None, max_length: int | None = None,
                  threshold: float | None = None, block_start: int = 0, alg_temp: float | None = None):
    """A diffusion sampler; with `block_size`, wrapped in semi-autoregressive block decoding (from `block_start`).
    `threshold`: the parameter of the adaptive rules (threshold: tau; factor: f; eb: gamma). `alg_temp` (Dream's):
    > 0 draws the positions to unmask from softmax(confidence / alg_temp) instead of taking the most confident."""
    build = REGISTRY.get(name)
    if build is None:
        raise UserError(f"unknown sampler '{name}'{closest_hint(name, list(SAMPLERS))}: "
                        f"choose one of {', '.join(SAMPLERS)} (or 'adjust' / 'ar' for those models)")
    if threshold is not None and name not in THRESHOLD_SAMPLERS:
        raise UserError(f"--threshold applies to the samplers {', '.join(THRESHOLD_SAMPLERS)} (and adjust), "
                        f"not '{name}': drop it or pick one of those")
    if alg_temp is not None and name not in ALG_TEMP_SAMPLERS:
        raise UserError(f"--alg-temp applies to the samplers {', '.join(ALG_TEMP_SAMPLERS)}, not '{name}': drop it "
                        "or pick one of those")
    sampler = build(tokens_per_step, threshold)
    if alg_temp is not None:
        sampler.alg_temp = check_alg_temp(alg_temp)
    if block_size is not None:
        sampler = BlockwiseSampler(sampler, block_size, eos_id=eos_id, pad_id=pad_id, max_length=max_length,
                                   start=block_start)
    return sampler
