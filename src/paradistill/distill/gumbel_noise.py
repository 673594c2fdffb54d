"""Gumbel noise for Gumbel Distillation: a counter-based RNG, posterior extraction, fresh inference noise.

Seeded per-position noise. Every noise vector is a pure function of (per-sample seed, stream, position): a
splitmix64 hash of the three seeds one CPU generator, whose first V draws are the V coordinates. So a `[B, L, V]` noise tensor never
has to exist: any slice of positions can be (re)generated on its own, chunked and one-shot extraction agree
bit for bit, and offline distillation only stores one seed per sample.

Posterior extraction (METHODS.md §3). Given normalised teacher log-probs `l = log p_T(. | x_<i)` (float64) and
the observed token `x = x_i`, with `T ~ Gumbel(0,1)` and `zeta_k ~ Gumbel(0,1)`:
    xi_x = T - l_x,    xi_k = -logaddexp(-zeta_k, l_k - T)  (k != x)
so `argmax(l + xi) = x`, and if `x ~ p_T` the coordinates of `xi` are i.i.d. Gumbel(0,1). AR shift: teacher
entry i-1 predicts token i; position 0 has no teacher prediction and gets plain (unconditioned) Gumbel noise.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import UserError
from ..models.noise_embed import SparseNoise
from ..seeding import splitmix64

# gaussian / uniform: the posterior Gumbel noise mapped through a CDF (same information, other marginals);
# independent: N(0, 1) noise drawn independently of the text (the uninformative control); none: no noise input
NOISE_TYPES = ("gumbel", "gaussian", "uniform", "independent", "none")
STREAM_POSTERIOR, STREAM_FRESH = 0, 1
_MAX_CHUNK_ELEMENTS = 1 << 22  # float64 elements per chunk (32 MiB)


def _i64(c: int) -> int:
    return c - (1 << 64) if c >= (1 << 63) else c


_GOLDEN, _MIX1, _MIX2 = _i64(0x9E3779B97F4A7C15), _i64(0xBF58476D1CE4E5B9), _i64(0x94D049BB133111EB)


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def mix64(z: torch.Tensor) -> torch.Tensor:
    """splitmix64 finaliser on int64 tensors (two's-complement wrap-around arithmetic)."""
    z = z + _GOLDEN
    z = (z ^ _shr(z, 30)) * _MIX1
    z = (z ^ _shr(z, 27)) * _MIX2
    return z ^ _shr(z, 31)


def mix64_reference(z: int) -> int:
    """Pure-Python splitmix64 as a signed int64 (tests check the tensor version against it)."""
    return _i64(splitmix64(z & ((1 << 64) - 1)))


def position_keys(seeds: torch.Tensor, positions: torch.Tensor, stream: int) -> torch.Tensor:
    """seeds: [B] int64, positions: [P] long -> [B, P] int64 keys, one independent stream per (seed, position)."""
    row = mix64(seeds.long() * _MIX2 + _i64((stream * 0x9E3779B97F4A7C15) & ((1 << 64) - 1)))
    return mix64(row[:, None] + (positions.long()[None, :] + 1) * _MIX1)


def uniform_from_keys(keys: torch.Tensor, n: int) -> torch.Tensor:
    """keys: [..] int64 -> [.., n] float64 uniforms in (0, 1): row r is the first n draws of a CPU generator
    seeded with keys[r] (one generator per (sample, position), so any slicing regenerates the same values)."""
    flat = keys.reshape(-1).cpu().tolist()
    out = torch.empty(len(flat), n, dtype=torch.float64)
    g = torch.Generator()
    for r, key in enumerate(flat):
        g.manual_seed(key & ((1 << 64) - 1))
        torch.rand(n, generator=g, dtype=torch.float64, out=out[r])
    out.add_(2.0 ** -54)  # multiples of 2^-53 in [0, 1) -> strictly inside (0, 1)
    return out.view(*keys.shape, n).to(keys.device)


def gumbel_from_keys(keys: torch.Tensor, n: int) -> torch.Tensor:
    """[..] int64 keys -> [.., n] float64 standard Gumbel noise."""
    return -torch.log(-torch.log(uniform_from_keys(keys, n)))


def check_seeds(seeds: torch.Tensor, batch: int) -> torch.Tensor:
    seeds = torch.as_tensor(seeds)
    if seeds.shape != (batch,) or seeds.dtype.is_floating_point:
        raise UserError(f"noise seeds must be an integer tensor [B={batch}], got {tuple(seeds.shape)} {seeds.dtype}")
    return seeds.long()


def draw_seeds(n: int, generator: torch.Generator) -> torch.Tensor:
    """[n] int64 per-sample seeds from an explicit generator."""
    return torch.randint(0, 2**62, (n,), generator=generator, dtype=torch.long)


def posterior_from_logp(logp: torch.Tensor, x: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The posterior noise of one slice of positions.
    logp: [B, P, V] normalised teacher log-probs predicting tokens x [B, P] long; keys: [B, P] int64 -> [B, P, V]
    float64 with argmax(logp + xi) == x exactly (in float64). Positions whose token has zero teacher
    probability (padding) get unconditioned Gumbel noise.
    With E = -log(u) ~ Exp(1) (so zeta = -log E): xi_k = -log(E_k + exp(l_k - T)), T = -log E_V."""
    logp = logp.double()
    vocab = logp.shape[-1]
    expo = uniform_from_keys(keys, vocab + 1).log_().neg_()  # [B, P, V + 1] Exp(1)
    top = -torch.log(expo[..., vocab:])  # T ~ Gumbel(0, 1): the max of the perturbed log-probs
    expo = expo[..., :vocab]
    lx = logp.gather(-1, x[..., None])
    possible = torch.isfinite(lx)
    xi = (logp - top).exp_().add_(expo).log_().neg_()
    xi.scatter_(-1, x[..., None], torch.where(possible, top - lx, -torch.log(expo.gather(-1, x[..., None]))))
    xi = _enforce_argmax(xi, logp, x, possible)
    if not bool(possible.all()):
        xi = torch.where(possible, xi, -torch.log(expo))
    return xi


def _enforce_argmax(xi: torch.Tensor, logp: torch.Tensor, x: torch.Tensor, possible: torch.Tensor) -> torch.Tensor:
    """Rounding can (with probability ~1e-15 per coordinate) leave a competitor tied with the observed token;
    push such coordinates down by a few ulps so that argmax(logp + xi) == x holds exactly."""
    for _ in range(4):
        score = logp + xi
        sx = score.gather(-1, x[..., None])
        score.scatter_(-1, x[..., None], float("-inf"))
        if not bool(((score.max(-1, keepdim=True).values >= sx) & possible).any()):
            break
        bad = (score >= sx) & possible
        xi = torch.where(bad, xi - (sx.abs() + 1.0) * 1e-13, xi)
    return xi


def transform_noise(xi: torch.Tensor, noise_type: str) -> torch.Tensor:
    """Map Gumbel(0,1) noise coordinate-wise onto another marginal through its CDF (ablations): 'gaussian'
    -> N(0,1), 'uniform' -> U(0,1). The token information is unchanged; only the distribution shape differs.
    'independent' maps like 'gaussian' (its noise is never a posterior: the objective draws it fresh)."""
    if noise_type == "gumbel":
        return xi
    if noise_type not in ("gaussian", "uniform", "independent"):
        raise UserError(f"noise type {noise_type!r}: choose one of {', '.join(NOISE_TYPES)}")
    e = torch.exp(-xi)
    if noise_type == "uniform":
        return torch.exp(-e)
    lower = torch.special.ndtri(torch.exp(-e).clamp_min(1e-300))
    upper = -torch.special.ndtri((-torch.expm1(-e)).clamp_min(1e-300))  # 1 - F(xi) without cancellation
    return torch.where(xi > 0, upper, lower)


def fresh_noise_from_keys(keys: torch.Tensor, vocab: int, noise_type: str) -> torch.Tensor:
    """[B, P] keys -> [B, P, V] float64 prior noise of the given type."""
    g = gumbel_from_keys(keys, vocab)
    return transform_noise(g, noise_type)


def _chunk_positions(batch: int, length: int, vocab: int, chunk: int | None) -> int:
    if chunk is None:
        chunk = max(1, _MAX_CHUNK_ELEMENTS // max(1, batch * (vocab + 1)))
    if chunk < 1:
        raise UserError(f"chunk={chunk}: must be >= 1 position")
    return min(chunk, length)


def _finish(xi: torch.Tensor, output: str, topk: int, temperature: float, dtype):
    """[B, P, V] float64 noise -> dense (scaled, cast) or sparse top-k of softmax(temperature * xi)."""
    xi = xi * temperature if temperature != 1.0 else xi
    if output == "dense":
        return xi.to(dtype)
    k = min(topk, xi.shape[-1])
    values, indices = xi.topk(k, dim=-1)
    return SparseNoise(indices, (values - torch.logsumexp(xi, -1, keepdim=True)).to(dtype))


def _combine(parts: list, output: str):
    if output == "dense":
        return torch.cat(parts, dim=1)
    return SparseNoise(torch.cat([p.indices for p in parts], 1), torch.cat([p.log_weights for p in parts], 1))


def check_output(output: str, topk: int) -> None:
    if output not in ("dense", "topk"):
        raise UserError(f"noise output {output!r}: choose 'dense' ([B, L, V]) or 'topk' (SparseNoise)")
    if output == "topk" and topk < 1:
        raise UserError(f"noise top-k={topk}: must be >= 1")


def extract_posterior(teacher_logp: Callable[[int, int], torch.Tensor] | torch.Tensor, x: torch.Tensor,
                      seeds: torch.Tensor, noise_type: str = "gumbel", output: str = "dense", topk: int = 32,
                      chunk: int | None = None, dtype=torch.float32):
    """Posterior noise for a real-data batch, position chunk by position chunk.

    teacher_logp: [B, L, V] (entry i predicts token i+1) or a callable (start, end) -> entries [start, end)
    as [B, end-start, V] (so the teacher's output never has to exist at once); x: [B, L] long; seeds: [B].
    Returns dense [B, L, V] `dtype` noise, or with output='topk' a SparseNoise of softmax(noise)'s top-k.
    `chunk` positions at a time (None: ~32 MiB of float64 per chunk; chunk >= L: one shot)."""
    check_output(output, topk)
    bsz, length = x.shape
    seeds = check_seeds(seeds, bsz)
    if isinstance(teacher_logp, torch.Tensor):
        full = teacher_logp
        if full.shape[:2] != (bsz, length):
            raise UserError(f"teacher log-probs {tuple(full.shape)} do not match tokens {tuple(x.shape)}")
        teacher_logp = lambda s, e: full[:, s:e]  # noqa: E731
    vocab = teacher_logp(0, 1).shape[-1]
    step = _chunk_positions(bsz, length, vocab, chunk)
    parts = [_posterior_chunk(teacher_logp, vocab, x, seeds, s, min(length, s + step), noise_type, output, topk,
                              dtype) for s in range(0, length, step)]
    return _combine(parts, output)


def _posterior_chunk(teacher_logp, vocab, x, seeds, start, end, noise_type, output, topk, dtype):
    """Noise for positions [start, end): position i uses teacher entry i - 1 (position 0: plain Gumbel)."""
    keys = position_keys(seeds.to(x.device), torch.arange(start, end, device=x.device), STREAM_POSTERIOR)
    if start == 0:
        head = gumbel_from_keys(keys[:, :1], vocab + 1)[..., :vocab]  # BOS: no teacher prediction
        rest = _posterior_chunk(teacher_logp, vocab, x, seeds, 1, end, noise_type, "dense", topk, torch.float64) \
            if end > 1 else head[:, :0]
        xi = torch.cat([transform_noise(head, noise_type), rest], dim=1)
        return _finish(xi, output, topk, 1.0, dtype)
    logp = teacher_logp(start - 1, end - 1).to(x.device)
    xi = posterior_from_logp(logp, x[:, start:end], keys)
    return _finish(transform_noise(xi, noise_type), output, topk, 1.0, dtype)


def fresh_noise(seeds: torch.Tensor, length: int, vocab: int, noise_type: str = "gumbel", temperature: float = 1.0,
                output: str = "dense", topk: int = 32, chunk: int | None = None, dtype=torch.float32,
                device=None, stream: int = STREAM_FRESH):
    """Prior noise [B, L, V] (or SparseNoise of softmax's top-k) of the given type times `temperature`, from
    per-sample seeds [B], chunk by chunk (inference; offline distillation uses its own stream)."""
    check_noise_temperature(temperature)
    check_output(output, topk)
    seeds = check_seeds(seeds, len(seeds))
    if noise_type not in NOISE_TYPES or noise_type == "none":
        raise UserError(f"noise type {noise_type!r}: choose one of gumbel, gaussian, uniform, independent")
    device = device if device is not None else seeds.device
    step = _chunk_positions(len(seeds), length, vocab, chunk)
    parts = []
    for start in range(0, length, step):
        end = min(length, start + step)
        keys = position_keys(seeds.to(device), torch.arange(start, end, device=device), stream)
        parts.append(_finish(fresh_noise_from_keys(keys, vocab, noise_type), output, topk, temperature, dtype))
    return _combine(parts, output)


def check_noise_temperature(temperature: float) -> None:
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise UserError(f"noise temperature={temperature!r}: must be a finite number > 0 "
                        "(1.0 = the training distribution; upstream sampled at 0.85)")
