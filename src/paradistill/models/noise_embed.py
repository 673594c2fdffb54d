"""Embeddings of a per-position V-dimensional noise vector (Gumbel Distillation's input).

`e_i = W softmax(xi_i)` with `W: V -> H` (no bias). Variants:
- dense: the full softmax times a learned V x H matrix (the published design);
- topk:  only the k largest entries of softmax(xi) (it is dominated by a few), same learned matrix,
         cost B*L*k*H instead of B*L*V*H;
- tied:  top-k entries through the (shared) token embedding, then a learned H x H map: no V x H parameters;
- linear: `W (xi - mean_k xi) / s` with the raw noise instead of its softmax (not in the paper): every coordinate
         enters with the same weight, so the values of xi at the tokens the teacher finds plausible are kept
         (softmax(xi) is dominated by its few largest coordinates, mostly tokens the text rules out). Centred
         per position because Gumbel-max ignores a constant shift; s = pi / sqrt(6), the Gumbel(0,1) std.
Optionally (`noise_logit_skip`) the noise also reaches the output directly: the logits at noise-injected
positions get `g(h_i) * xi_i`, with a gate `g` linear in the final hidden state (zero-initialised). This is the
Gumbel-max structure of the teacher's sample, `x_i = argmax(l_i + xi_i)`: a student whose own logits approach the
teacher's `l_i` needs only a large gate to reproduce the sample, instead of routing a V-dim vector through H dims.
The input is either dense noise `xi: [B, L, V]` or a `SparseNoise` (top-k indices and log-weights), which
the chunked extractor produces without materialising [B, L, V].
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

GUMBEL_STD = math.pi / math.sqrt(6.0)
EMBED_MODES = ("dense", "topk", "tied", "linear")
DENSE_INPUT_MODES = ("dense", "linear")  # the modes that take the full [B, L, V] noise (the others: its top-k)


class SparseNoise(NamedTuple):
    indices: torch.Tensor  # [B, L, k] long, top-k coordinates of xi
    log_weights: torch.Tensor  # [B, L, k] float, log softmax(xi) at those coordinates


def topk_softmax(xi: torch.Tensor, k: int) -> SparseNoise:
    """xi: [B, L, V] -> the k largest entries of softmax(xi), with their exact (unrenormalised) log weights."""
    values, indices = xi.topk(k, dim=-1)
    return SparseNoise(indices, values - torch.logsumexp(xi, dim=-1, keepdim=True))


class NoiseEmbedding(nn.Module):
    def __init__(self, vocab_size: int, dim: int, mode: str, topk: int, token_embed: nn.Embedding,
                 noise_vocab: int = 0):
        super().__init__()
        self.mode = mode
        self.topk = topk
        # only the first `noise_vocab` coordinates are embedded (published GD: all but MASK); dense modes only
        n = vocab_size + noise_vocab if noise_vocab < 0 else noise_vocab  # -k: all but the last k
        self.noise_vocab = n if 0 < n < vocab_size else 0
        if self.noise_vocab and mode not in DENSE_INPUT_MODES:
            raise ValueError(f"model.noise_vocab={noise_vocab} needs a dense noise embedding ({DENSE_INPUT_MODES})")
        vocab_size = self.noise_vocab or vocab_size
        if mode in ("dense", "topk", "linear"):
            self.weight = nn.Parameter(torch.randn(vocab_size, dim) * 0.02)
            self.out = None
        else:  # tied: reuse the token embedding (not registered twice)
            self._token_embed = [token_embed]
            self.weight = None
            self.out = nn.Linear(dim, dim, bias=False)

    def _table(self) -> torch.Tensor:
        return self.weight if self.weight is not None else self._token_embed[0].weight

    def forward(self, noise) -> torch.Tensor:
        """noise: [B, L, V] float or SparseNoise -> [B, L, H]."""
        table = self._table()
        if self.noise_vocab and isinstance(noise, torch.Tensor):
            noise = noise[..., : self.noise_vocab]
        if self.mode == "linear":
            if not isinstance(noise, torch.Tensor):
                raise ValueError("the linear noise embedding needs the dense noise [B, L, V], not its top-k")
            xi = noise.float()
            return ((xi - xi.mean(dim=-1, keepdim=True)) / GUMBEL_STD).to(table.dtype) @ table
        if isinstance(noise, torch.Tensor) and self.mode == "dense":
            return F.softmax(noise.float(), dim=-1).to(table.dtype) @ table
        if isinstance(noise, torch.Tensor):
            noise = topk_softmax(noise.float(), self.topk)
        bsz, length, k = noise.indices.shape
        emb = F.embedding_bag(noise.indices.reshape(-1, k), table,
                              per_sample_weights=noise.log_weights.reshape(-1, k).exp().to(table.dtype),
                              mode="sum").view(bsz, length, -1)
        return self.out(emb) if self.out is not None else emb


def noise_as_logits(noise, vocab_size: int) -> torch.Tensor:
    """Dense noise [B, L, V] as is; SparseNoise as a [B, L, V] tensor holding `xi` up to a per-position constant at
    its top-k coordinates and the k-th largest value elsewhere (the tail clamped up: same softmax ordering)."""
    if isinstance(noise, torch.Tensor):
        return noise.float()
    lw = noise.log_weights.float()
    floor = lw.min(dim=-1, keepdim=True).values
    out = torch.zeros(*lw.shape[:-1], vocab_size, dtype=lw.dtype, device=lw.device)
    return out.scatter_(-1, noise.indices, lw - floor)


class NoiseLogitSkip(nn.Module):
    """logits += g(h_i) * xi_i at positions where `where` is True; g = Linear(H -> 1)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gate = nn.Linear(dim, 1)

    def forward(self, hidden: torch.Tensor, noise, where: torch.Tensor | None, vocab_size: int) -> torch.Tensor:
        # hidden: [B, L, H]; noise: [B, L, V] or SparseNoise; where: [B, L] bool or None (everywhere)
        scale = self.gate(hidden).float()  # [B, L, 1]
        if where is not None:
            scale = scale * where[..., None]
        return scale * noise_as_logits(noise, vocab_size)


def build_noise_embedding(cfg, token_embed: nn.Embedding) -> NoiseEmbedding:
    return NoiseEmbedding(cfg.vocab_size, cfg.dim, cfg.noise_embed, cfg.noise_topk, token_embed,
                          getattr(cfg, "noise_vocab", 0))
