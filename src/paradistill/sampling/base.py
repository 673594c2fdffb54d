"""The sampler interface shared by every masked-diffusion sampler, and the denoisers they drive.

A `Denoiser` maps `(x: [B, L] long, t: [B] float)` to SUBS log-probs `[B, L, V]`: samplers see only this,
never the method that trained the model. A `Sampler` has `init(...) -> SamplerState`, `step(state) -> state`
and `done(state)`; `run_sampler` drives the loop, counts NFE (full forward passes), shows progress and fills
any position still masked at the end.

Hot path: a step needs log-probs only where tokens are masked. `log_probs_at(denoiser, x, t, where)` returns
them as `[N, V]` (row-major over `where`) and, for the project's backbone, computes the output head and the
log-softmax only there (`Denoiser.masked_log_probs`); other denoisers fall back to their full `[B, L, V]`
output, indexed.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch

from ..diffusion.mdlm import NEG_INF, subs_log_probs
from ..errors import UserError
from .categorical import check_sampling_options, sample_categorical


@dataclass
class SamplingOptions:
    temperature: float = 1.0
    top_p: float = 1.0
    final_fill: str = "sample"  # "sample" | "argmax" for positions still masked after the last step
    banned_ids: tuple[int, ...] = ()  # never drawn (e.g. PAD for models trained without padding)

    def validate(self) -> None:
        check_sampling_options(self.temperature, self.top_p)
        if self.final_fill not in ("sample", "argmax"):
            raise UserError(f"final_fill={self.final_fill!r}: choose 'sample' or 'argmax'")


def ban(log_probs: torch.Tensor, banned_ids: tuple[int, ...]) -> torch.Tensor:
    if not banned_ids:
        return log_probs
    return log_probs.index_fill(-1, torch.tensor(banned_ids, device=log_probs.device), float("-inf"))


class Denoiser:
    """Wraps a backbone as (x, t) -> SUBS log-probs. `extra` [B, L, H] is a fixed per-position input
    embedding (Gumbel noise), injected at masked positions."""

    def __init__(self, model, mask_id: int, extra: torch.Tensor | None = None):
        self.model = model
        self.mask_id = mask_id
        self.extra = extra
        self.time_conditioned = bool(model.cfg.time_conditioning)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # x: [B, L] long, t: [B] float -> [B, L, V] float32 log-probs
        sigma = t if self.time_conditioned else None
        extra_mask = (x == self.mask_id) if self.extra is not None else None
        logits = self.model(x, **self.model_inputs(x), sigma=sigma, extra=self.extra, extra_mask=extra_mask).logits
        return subs_log_probs(logits, x, self.mask_id)

    def model_inputs(self, x: torch.Tensor) -> dict:
        """Attention (and positions) the backbone gets for rows x: [B, L]; left-padded rows override it
        (sampling/padding.py)."""
        return {"attn": "bidirectional"}

    @torch.no_grad()
    def masked_log_probs(self, x: torch.Tensor, t: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """SUBS log-probs at `where` only. x: [B, L] long, t: [B], where: [B, L] bool -> [N, V] float32,
        equal to `self(x, t)[where]`; the output head and the softmax run on the N selected rows only."""
        if type(self).__call__ is not Denoiser.__call__:  # a subclass with its own forward: index its output
            return self(x, t)[where]
        sigma = t if self.time_conditioned else None
        extra_mask = (x == self.mask_id) if self.extra is not None else None
        logits = self.model(x, **self.model_inputs(x), sigma=sigma, extra=self.extra, extra_mask=extra_mask,
                            logits_at=where).logits
        return subs_rows(logits, x[where], self.mask_id)

    def block_view(self, x: torch.Tensor, start: int, end: int) -> "Denoiser":
        """A denoiser over positions [start, end) of `x` (the rest of `x` held as it is)."""
        return FullSequenceBlockView(self, x, start, end)

    def commit(self, x_block: torch.Tensor, start: int, end: int) -> None:
        """Called when block [start, end) is final (BD3-LM stores its keys/values here)."""


class FullSequenceBlockView(Denoiser):
    """Runs the parent on the whole sequence with this block substituted; returns the block's log-probs."""

    def __init__(self, parent: Denoiser, x: torch.Tensor, start: int, end: int):
        self.parent, self.context, self.start, self.end = parent, x.clone(), start, end
        self.mask_id = parent.mask_id
        self.time_conditioned = parent.time_conditioned

    def __call__(self, x_block, t):
        full = self.context.clone()
        full[:, self.start:self.end] = x_block
        return self.parent(full, t)[:, self.start:self.end]

    def masked_log_probs(self, x_block, t, where):
        full = self.context.clone()
        full[:, self.start:self.end] = x_block
        where_full = torch.zeros_like(full, dtype=torch.bool)
        where_full[:, self.start:self.end] = where
        return log_probs_at(self.parent, full, t, where_full)

    def block_view(self, x, start, end):
        return FullSequenceBlockView(self, x, start, end)


def subs_rows(logits: torch.Tensor, tokens: torch.Tensor, mask_id: int) -> torch.Tensor:
    """SUBS on selected rows: logits [N, V], their current tokens [N] -> log-probs [N, V] float32 (MASK removed
    where the token is masked, one-hot where it is not). Float32 logits are overwritten (the MASK column): pass a
    fresh model output, as the samplers do."""
    logits = logits.float().index_fill_(-1, torch.tensor([mask_id], device=logits.device), NEG_INF)
    log_probs = torch.log_softmax(logits, dim=-1)
    unmasked = tokens != mask_id
    if bool(unmasked.any()):
        one_hot = torch.full_like(log_probs, NEG_INF).scatter_(-1, tokens.unsqueeze(-1), 0.0)
        log_probs = torch.where(unmasked[:, None], one_hot, log_probs)
    return log_probs


def log_probs_at(denoiser, x: torch.Tensor, t: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """[N, V] log-probs of `denoiser` at `where` ([B, L] bool): the denoiser's own masked-only path when it has
    one, else its full output indexed (custom denoisers in research scripts)."""
    fn = getattr(denoiser, "masked_log_probs", None)
    if fn is None:
        return denoiser(x, t)[where]
    return fn(x, t, where)


@dataclass
class SamplerState:
    x: torch.Tensor  # [B, L] long, current sequence (MASK where not yet decoded)
    fixed: torch.Tensor  # [B, L] bool, prompt / infill positions: never changed
    denoiser: Denoiser
    generator: torch.Generator
    num_steps: int
    options: SamplingOptions
    step: int = 0
    nfe: int = 0
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def masked(self) -> torch.Tensor:
        return (self.x == self.denoiser.mask_id) & ~self.fixed

    def denoise(self, t: torch.Tensor) -> torch.Tensor:
        """One full forward pass (counted)."""
        self.nfe += 1
        return self.denoiser(self.x, t)

    def denoise_at(self, t: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
        """One full forward pass (counted), log-probs only at `where` (default: the masked positions) -> [N, V]."""
        self.nfe += 1
        return log_probs_at(self.denoiser, self.x, t, self.masked if where is None else where)

    def draw(self, log_probs: torch.Tensor) -> torch.Tensor:
        """Sample tokens from [N, V] log-probs with the state's temperature / top-p (float64)."""
        log_probs = ban(log_probs, self.options.banned_ids)
        return sample_categorical(log_probs, self.generator, self.options.temperature, self.options.top_p)


class Sampler(ABC):
    name = "sampler"

    def init(self, x, fixed, denoiser, generator, steps, options) -> SamplerState:
        if steps < 1:
            raise UserError(f"steps={steps}: must be >= 1")
        x = torch.where(fixed, x, torch.full_like(x, denoiser.mask_id))
        return SamplerState(x, fixed, denoiser, generator, steps, options)

    @abstractmethod
    def step(self, state: SamplerState) -> SamplerState: ...

    def done(self, state: SamplerState) -> bool:
        return state.step >= state.num_steps or not bool(state.masked.any())

    def total_steps(self, state: SamplerState) -> int:
        return state.num_steps


@dataclass
class SampleResult:
    tokens: torch.Tensor  # [B, L] long
    nfe: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def final_fill(state: SamplerState) -> SamplerState:
    """Fill every position still masked (argmax or sample), one extra forward pass."""
    masked = state.masked
    if not masked.any():
        return state
    t = masked.float().mean(1).clamp_min(1e-3)
    log_probs = state.denoise_at(t, masked)
    log_probs = ban(log_probs, state.options.banned_ids)
    tokens = log_probs.argmax(-1) if state.options.final_fill == "argmax" else state.draw(log_probs)
    state.x = state.x.masked_scatter(masked, tokens)
    return state


def run_sampler(sampler: Sampler, denoiser: Denoiser, x: torch.Tensor, fixed: torch.Tensor,
                generator: torch.Generator, steps: int, options: SamplingOptions | None = None,
                progress: bool = False) -> SampleResult:
    """x: [B, L] long (values at `fixed` positions are kept), fixed: [B, L] bool."""
    options = options or SamplingOptions()
    options.validate()
    start = time.perf_counter()
    state = sampler.init(x, fixed, denoiser, generator, steps, options)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sampler.total_steps(state), desc=f"sampling ({sampler.name})", leave=False)
    while not sampler.done(state):
        state = sampler.step(state)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(nfe=state.nfe)
    if bar is not None:
        bar.close()
    state = final_fill(state)
    return SampleResult(state.x, state.nfe, time.perf_counter() - start)
