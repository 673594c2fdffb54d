"""Build samplers by name (the CLI's --sampler)."""

from __future__ import annotations

from ..config import closest_hint
from ..errors import UserError
from .blocks import BlockwiseSampler
from .remasking import LowConfidenceRemasking
from .samplers import AncestralSampler, ConfidenceSampler, FirstHittingSampler

SAMPLERS = ("ancestral", "ancestral-nocache", "first-hitting", "confidence", "entropy", "margin", "low-confidence",
            "random-remasking")


def build_sampler(name: str, block_size: int | None = None, tokens_per_step: int | None = None,
                  eos_id: int | None = None, pad_id: int | None = None, max_length: int | None = None,
                  block_start: int = 0):
    """A diffusion sampler; with `block_size`, wrapped in semi-autoregressive block decoding."""
    if name == "ancestral":
        sampler = AncestralSampler(cache=True)
    elif name == "ancestral-nocache":
        sampler = AncestralSampler(cache=False)
    elif name == "first-hitting":
        sampler = FirstHittingSampler()
    elif name in ("confidence", "entropy", "margin"):
        sampler = ConfidenceSampler(name, tokens_per_step)
    elif name in ("low-confidence", "random-remasking"):  # LLaDA's remasking strategies
        sampler = LowConfidenceRemasking("random" if name == "random-remasking" else name)
    else:
        raise UserError(f"unknown sampler '{name}'{closest_hint(name, list(SAMPLERS))}: "
                        f"choose one of {', '.join(SAMPLERS)} (or 'adjust' / 'ar' for those models)")
    if block_size is not None:
        sampler = BlockwiseSampler(sampler, block_size, eos_id=eos_id, pad_id=pad_id, max_length=max_length,
                                   start=block_start)
    return sampler
