"""Left-padded batches of different prompts (the batched `generate` of the LLaDA / Dream releases).

Rows of different template lengths are right-aligned with PAD tokens on the left, so every row's generated part
sits at the same positions (LLaDA's semi-autoregressive blocks then tile the same columns of every row). The
pads are hidden from the model:

- attention: a real position attends only to real positions; a pad attends only to itself (it still needs one
  key, or its softmax row would be empty and NaN would spread through the value products);
- positions: each row counts its real tokens from 0 (`cumsum(real) - 1`, as Dream's `generation_utils`), so a
  padded row sees the rotary angles of the same prompt alone.

A left-padded row therefore gives the logits of its unpadded prompt (up to float rounding). Pads are fixed
positions, so samplers never change them and never count them as free; Dream's realignment makes the first REAL
position read a pad's output, which is never used (that position is the prompt's first token, always fixed).
"""

from __future__ import annotations

import torch

from .base import Denoiser


def pad_attention(pad: torch.Tensor) -> torch.Tensor:
    """pad: [B, L] bool (True = left pad) -> attention mask [B, 1, L, L] bool (True = query may attend key)."""
    real = ~pad
    allowed = real[:, :, None] & real[:, None, :]
    eye = torch.eye(pad.shape[1], dtype=torch.bool, device=pad.device)
    return (allowed | (pad[:, :, None] & eye))[:, None]


def pad_positions(pad: torch.Tensor) -> torch.Tensor:
    """pad: [B, L] bool -> rotary positions [B, L] long: 0, 1, ... over each row's real tokens (pads get 0)."""
    return ((~pad).long().cumsum(1) - 1).clamp_min(0)


def left_pad(rows: list[torch.Tensor], fixed: list[torch.Tensor], pad_id: int
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Template rows of different lengths ([L_i] long) and their fixed masks ([L_i] bool) -> x [B, L] long,
    fixed [B, L] bool, pad [B, L] bool, right-aligned at L = max L_i with `pad_id` on the left (pads are fixed)."""
    length = max(len(r) for r in rows)
    x = torch.full((len(rows), length), pad_id, dtype=torch.long)
    fx = torch.ones((len(rows), length), dtype=torch.bool)
    pad = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, (r, f) in enumerate(zip(rows, fixed)):
        n = length - len(r)
        x[i, n:], fx[i, n:], pad[i, :n] = r, f, True
    return x, fx, pad


class PaddedDenoiser(Denoiser):
    """A plain (time-agnostic or time-conditioned, noise-free) denoiser over left-padded rows: the model sees the
    pad attention mask and per-row positions. pad: [B, L] bool, fixed for the whole batch."""

    def __init__(self, model, mask_id: int, pad: torch.Tensor):
        super().__init__(model, mask_id)
        self.pad = pad
        self._inputs = {"attn": pad_attention(pad), "positions": pad_positions(pad)}

    def model_inputs(self, x: torch.Tensor) -> dict:
        if x.shape != self.pad.shape:
            raise ValueError(f"PaddedDenoiser built for rows {tuple(self.pad.shape)} got {tuple(x.shape)}")
        return self._inputs
