"""Semi-autoregressive decoding: blocks left to right, any inner sampler within a block.

Works with every denoiser through `denoiser.block_view` (MDLM: the whole sequence with later blocks still
masked; BD3-LM: the block alone against a KV cache of the clean blocks, see sampling/bd3lm.py).
"""

from __future__ import annotations

import math

import torch

from ..errors import UserError
from .base import Sampler, SamplerState, final_fill


class BlockwiseSampler(Sampler):
    def __init__(self, inner: Sampler, block_size: int, eos_id: int | None = None, pad_id: int | None = None,
                 max_length: int | None = None, start: int = 0):
        if block_size < 1:
            raise UserError(f"block_size={block_size}: must be >= 1")
        if max_length is not None and (max_length < 1 or pad_id is None):
            raise UserError(f"max_length={max_length}: must be >= 1 and needs pad_id (positions past it are padding)")
        self.inner, self.block_size = inner, block_size
        self.eos_id, self.pad_id = eos_id, pad_id  # variable length: stop once every row has ended
        self.max_length = max_length  # optional cap: blocks past it are not generated, positions past it padded
        self.start = start  # first block's position (LLaDA: blocks tile the generated part, after the prompt)
        self.name = f"blocks({block_size})+{inner.name}"

    def init(self, x, fixed, denoiser, generator, steps, options):
        length = x.shape[1]
        if (length - self.start) % self.block_size:
            raise UserError(f"block_size={self.block_size} does not divide the "
                            f"{'generation' if self.start else 'sequence'} length {length - self.start}")
        state = super().init(x, fixed, denoiser, generator, steps, options)
        state.cache["steps_per_block"] = steps
        cap = length if self.max_length is None else min(length, self.max_length)
        state.num_steps = math.ceil((cap - self.start) / self.block_size)
        state.cache["cap"] = cap
        return state

    def done(self, state):
        if state.step >= state.num_steps:
            return True
        if self.eos_id is not None and state.step > 0:
            end = self.start + state.step * self.block_size
            decoded = (state.x[:, :end] == self.eos_id) & ~state.fixed[:, :end]  # generated EOS (BOS may equal it)
            return bool(decoded.any(1).all())
        return False

    def step(self, state: SamplerState) -> SamplerState:
        start = self.start + state.step * self.block_size
        end = start + self.block_size
        view = state.denoiser.block_view(state.x, start, end)
        inner = self.inner.init(state.x[:, start:end], state.fixed[:, start:end], view, state.generator,
                                state.cache["steps_per_block"], state.options)
        while not self.inner.done(inner):
            inner = self.inner.step(inner)
        inner = final_fill(inner)
        state.x[:, start:end] = inner.x
        state.nfe += inner.nfe
        state.denoiser.commit(inner.x, start, end)
        state.step += 1
        if self.done(state) and self.eos_id is not None and self.pad_id is not None:
            self._pad_after_eos(state)
        if self.done(state) and state.cache["cap"] < state.x.shape[1]:
            past = torch.zeros_like(state.fixed)
            past[:, state.cache["cap"]:] = True
            state.x = state.x.masked_fill(past & ~state.fixed, self.pad_id)
            state.fixed = state.fixed | past
        return state

    def _pad_after_eos(self, state: SamplerState) -> None:
        is_eos = ((state.x == self.eos_id) & ~state.fixed).int()
        after = (is_eos.cumsum(1) - is_eos) > 0  # strictly after the first EOS
        state.x = state.x.masked_fill(after & ~state.fixed, self.pad_id)
        state.fixed = state.fixed | after
