"""The one backbone: a pre-norm transformer with rotary positions and SDPA attention.

It serves every method: causal masks for AR, bidirectional for MDLM, arbitrary boolean masks for BD3-LM,
a KV cache for incremental decoding, optional adaLN time conditioning, and an optional per-position extra
input embedding (Gumbel Distillation's noise).
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..config import check_ranges
from ..errors import UserError
from ..memory import check_memory
from .noise_embed import NoiseLogitSkip, build_noise_embedding


@dataclass
class ModelConfig:
    vocab_size: int = 0
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    tie_weights: bool = True
    head_bias: bool = False  # a bias on the output head (imported MDLM DiT checkpoints have one)
    time_conditioning: bool = False
    # adaLN layers without time conditioning: driven by the fixed time 0, as the MDLM-family DiTs run with time
    # conditioning off (imported published checkpoints keep their parameters; time_conditioning implies them)
    adaln: bool = False
    cond_dim: int = 128
    # What the time embedding sees: "t1000" = 1000 * t (paradistill's own models); "loglinear_sigma" = the
    # log-linear noise level sigma(t) = -log(1 - (1 - time_eps) t), unscaled (MDLM / BD3-LM DiT checkpoints).
    time_input: Literal["t1000", "loglinear_sigma"] = "t1000"
    time_eps: float = 1e-3
    rope_base: float = 10000.0
    max_len: int = 1024
    # Per-position extra input (Gumbel noise): "none", or how a V-dim noise vector is embedded.
    noise_embed: Literal["none", "dense", "topk", "tied", "linear"] = "none"
    noise_topk: int = 32
    # noise coordinates embedded: 0 = all vocab_size; n > 0 = the first n; -k = all but the last k (-1: all but
    # MASK, as the published Gumbel-distill students, whose projection spans GPT-2's 50257 ids)
    noise_vocab: int = 0
    extra_mode: Literal["replace", "add"] = "replace"
    noise_logit_skip: bool = False  # add gate(h_i) * xi_i to the logits where noise is injected (noise_embed.py)
    # AR-adapted diffusion models (diffusion/adapt.py): the network's output i predicts token i+1; forward
    # realigns logits and hidden states so that output i is about token i (output 0 repeats the raw output 0).
    output_shift: bool = False

    def validate(self) -> None:
        if self.vocab_size < 2:
            raise UserError(f"model.vocab_size={self.vocab_size}: must be >= 2 (it is set from the tokenizer)")
        check_ranges(self, "model", {"dim": (2, None), "n_heads": (1, None), "n_layers": (1, None),
                                     "mlp_ratio": (1e-9, None), "dropout": (0, "<1"), "cond_dim": (1, None),
                                     "rope_base": (1e-9, None), "max_len": (2, None), "noise_topk": (1, None)})
        if self.dim % self.n_heads != 0:
            raise UserError(f"model.dim={self.dim} is not divisible by model.n_heads={self.n_heads}")
        if (self.dim // self.n_heads) % 2 != 0:
            raise UserError(f"model head size {self.dim // self.n_heads} must be even for rotary positions")
        if self.time_input not in ("t1000", "loglinear_sigma"):
            raise UserError(f"model.time_input={self.time_input!r}: choose 't1000' or 'loglinear_sigma'")
        if not -self.vocab_size < self.noise_vocab <= self.vocab_size:
            raise UserError(f"model.noise_vocab={self.noise_vocab}: must be in (-vocab_size, vocab_size="
                            f"{self.vocab_size}] (0: all, -1: all but MASK)")

    def num_parameters(self) -> int:
        """Exact parameter count, computed on the meta device (no memory allocated)."""
        with torch.device("meta"):
            return Transformer(self).num_parameters()


class ModelOutput(NamedTuple):
    logits: torch.Tensor  # [B, L, V] float32
    hidden: torch.Tensor  # [B, L, H] final normalised hidden state (input of the output head)


class KVCache:
    """Preallocated keys/values for every layer: [n_layers, B, heads, max_len, head_dim].

    Dynamic (default): `length` counts the cached positions; a forward appends after them and attends to the
    prefix. Static (`static=True`, for compiled decoding): the caller passes `positions`; keys/values are written
    there and every query attends to the whole buffer under a mask (key position <= query position), so each
    decoding step has the same shapes and no Python-side state (one compiled graph, no recompilation)."""

    def __init__(self, cfg: ModelConfig, batch_size: int, max_len: int, device=None, dtype=torch.float32,
                 static: bool = False):
        head_dim = cfg.dim // cfg.n_heads
        shape = (cfg.n_layers, batch_size, cfg.n_heads, max_len, head_dim)
        bytes_per = torch.tensor([], dtype=dtype).element_size()
        check_memory(self.estimate_bytes(cfg, batch_size, max_len, bytes_per), f"a KV cache for batch {batch_size} x "
                     f"{max_len} positions", "lower --batch-size or the sequence length", device)
        if static:  # one tensor per layer: a compiled step then updates each in place (no aliased graph inputs)
            self.k = [torch.zeros(shape[1:], device=device, dtype=dtype) for _ in range(cfg.n_layers)]
            self.v = [torch.zeros(shape[1:], device=device, dtype=dtype) for _ in range(cfg.n_layers)]
        else:
            self.k = torch.zeros(shape, device=device, dtype=dtype)
            self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0
        self.max_len = max_len
        self.static = static
        self.key_positions = torch.arange(max_len, device=device) if static else None
        # dynamic: when set, queries attend to keys [0, extent) (not only the prefix [0, length + L)): the
        # block-wise dual cache of full-attention masked models (sampling/approx_cache.py) reuses suffix keys
        self.extent: int | None = None
        # static: when set, a step reads keys [0, window) only (the filled part, rounded up by the caller to a
        # few sizes so a compiled step has a few graphs instead of attending to the whole buffer)
        self.window: int | None = None

    @staticmethod
    def estimate_bytes(cfg: ModelConfig, batch_size: int, max_len: int, bytes_per_value: int = 4) -> int:
        return 2 * cfg.n_layers * batch_size * max_len * cfg.dim * bytes_per_value


_ROTARY_TABLES: dict = {}  # (head_dim, base, device, dtype) -> (cos, sin) [n, d/2]: filled on first use


def _rotary(positions: torch.Tensor, head_dim: int, base: float, dtype,
            need: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """positions: [L] or [B, L] -> cos, sin broadcastable to [B, heads, L, head_dim // 2].

    Gathered from a table computed once per (head size, base, device, dtype) and grown on demand, so an
    incremental decoding step costs one index instead of recomputing the angles. `need` (> every position)
    spares a device sync when the caller knows it."""
    key = (head_dim, base, positions.device, dtype)
    if need is None:
        need = int(positions.max()) + 1 if positions.numel() else 1
    table = _ROTARY_TABLES.get(key)
    if table is None or table[0].shape[0] < need:
        n = max(need, 2 * table[0].shape[0] if table is not None else 1024)
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim))
        angles = torch.arange(n, device=positions.device, dtype=torch.float32)[:, None] * inv_freq  # [n, d/2]
        table = _ROTARY_TABLES[key] = (angles.cos().to(dtype), angles.sin().to(dtype))
    cos, sin = table[0][positions], table[1][positions]
    if cos.dim() == 2:
        return cos[None, None], sin[None, None]
    return cos[:, None], sin[:, None]


def _apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs (x[2j], x[2j+1]) of the last dimension by the given angles."""
    x1, x2 = x[..., ::2], x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


def _attention_mask(attn, q_len: int, past: int, device) -> tuple[torch.Tensor | None, bool]:
    """Returns (bool mask [Lq, past+Lq] or given tensor, is_causal flag for SDPA)."""
    if isinstance(attn, torch.Tensor):
        return attn, False
    if attn == "bidirectional":
        return None, False
    if attn == "causal":
        if past == 0:
            return None, True
        if q_len == 1:  # one new query attends to every cached key: no mask (SDPA's fast path)
            return None, False
        new = torch.ones(q_len, q_len, dtype=torch.bool, device=device).tril()
        old = torch.ones(q_len, past, dtype=torch.bool, device=device)
        return torch.cat([old, new], dim=1), False
    raise UserError(f"attention mode {attn!r} is not one of 'causal', 'bidirectional' or a boolean tensor")


# SDPA backends for decoding into a dynamic KV cache on CUDA: all but cuDNN attention, which builds a graph for every
# new key length (about 50 ms each on an H200 with torch 2.11), and a dynamic cache meets a new length at every step.
# PARADISTILL_DECODE_CUDNN=1 lets PyTorch choose freely again (to compare the two).
_DECODE_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def decode_allows_cudnn() -> bool:
    """Whether PARADISTILL_DECODE_CUDNN=1 hands cached decoding's SDPA backend choice back to PyTorch."""
    return os.environ.get("PARADISTILL_DECODE_CUDNN") == "1"


def decode_attention_context(device: torch.device, dynamic_cache: bool):
    """The SDPA backend choice for one forward: without cuDNN when decoding into a dynamic cache on CUDA (eager);
    PyTorch's own choice otherwise."""
    if (not dynamic_cache or device.type != "cuda" or torch.compiler.is_compiling()
            or decode_allows_cudnn()):
        return contextlib.nullcontext()
    return sdpa_kernel(_DECODE_BACKENDS)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.head_dim = cfg.dim // cfg.n_heads
        self.rope_base = cfg.rope_base
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim, bias=False)
        self.proj = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.dropout = cfg.dropout

    def forward(self, x, cos, sin, attn, cache: KVCache | None, layer: int, pos=None) -> torch.Tensor:
        # x: [B, L, H]; pos: [L] positions, where a static cache is written (attn is then its mask)
        bsz, q_len, _ = x.shape
        qkv = self.qkv(x).view(bsz, q_len, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = _apply_rotary(qkv[:2], cos, sin).unbind(0)  # queries and keys rotated in one pass
        v = qkv[2]
        past = 0
        if cache is not None and cache.static:
            cache.k[layer].index_copy_(2, pos, k)
            cache.v[layer].index_copy_(2, pos, v)
            # explicit attention (matmul, masked softmax, matmul): compiles to two GEMMs and one fused kernel,
            # where SDPA with a mask decomposes into many small copies for a single query
            keys, values = cache.k[layer], cache.v[layer]
            if attn.shape[-1] < cache.max_len:  # a window: only the filled part of the buffer is read
                keys, values = keys[:, :, :attn.shape[-1]], values[:, :, :attn.shape[-1]]
            scores = (q @ keys.transpose(-1, -2)) * self.head_dim ** -0.5
            out = torch.softmax(scores.masked_fill(~attn, float("-inf")), dim=-1) @ values
            return self.proj(out.transpose(1, 2).reshape(bsz, q_len, -1))
        if cache is not None:
            past = cache.length
            if past + q_len > cache.max_len:
                raise UserError(f"KV cache holds {cache.max_len} positions but {past + q_len} are needed: "
                                "allocate a longer cache")
            cache.k[layer, :, :, past:past + q_len] = k
            cache.v[layer, :, :, past:past + q_len] = v
            upto = max(past + q_len, cache.extent or 0)
            k = cache.k[layer, :, :, :upto]
            v = cache.v[layer, :, :, :upto]
        mask, is_causal = _attention_mask(attn, q_len, past, x.device)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(bsz, q_len, -1))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.dim)
        hidden = int(cfg.mlp_ratio * cfg.dim)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, cfg.dim))
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.adaln = nn.Linear(cfg.cond_dim, 6 * cfg.dim) if cfg.time_conditioning or cfg.adaln else None

    def forward(self, x, cos, sin, attn, cache, layer, cond=None, pos=None):
        if self.adaln is None:
            x = x + self.resid_dropout(self.attn(self.norm1(x), cos, sin, attn, cache, layer, pos))
            return x + self.resid_dropout(self.mlp(self.norm2(x)))
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaln(cond)[:, None].chunk(6, dim=-1)
        h = self.norm1(x) * (1 + scale1) + shift1
        x = x + gate1 * self.resid_dropout(self.attn(h, cos, sin, attn, cache, layer, pos))
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.resid_dropout(self.mlp(h))


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of the diffusion time t in [0, 1] followed by an MLP."""

    def __init__(self, cond_dim: int, freq_dim: int = 256, time_input: str = "t1000", time_eps: float = 1e-3):
        super().__init__()
        self.freq_dim = freq_dim
        self.time_input, self.time_eps = time_input, time_eps
        self.mlp = nn.Sequential(nn.Linear(freq_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        if self.time_input == "loglinear_sigma":
            scaled = -torch.log1p(-(1.0 - self.time_eps) * t.float())
        else:
            scaled = t.float() * 1000.0
        args = scaled[:, None] * freqs[None]
        return self.mlp(torch.cat([args.cos(), args.sin()], dim=-1))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=cfg.head_bias)
        if cfg.tie_weights:
            self.head.weight = self.embed.weight
        adaln = cfg.time_conditioning or cfg.adaln
        self.time_embed = TimeEmbedding(cfg.cond_dim, time_input=cfg.time_input,
                                        time_eps=cfg.time_eps) if adaln else None
        self.final_adaln = nn.Linear(cfg.cond_dim, 2 * cfg.dim) if adaln else None
        self.noise_embed = None
        if cfg.noise_embed != "none":
            self.noise_embed = build_noise_embedding(cfg, self.embed)
        self.noise_skip = None
        if cfg.noise_logit_skip:
            if cfg.noise_embed == "none":
                raise UserError("model.noise_logit_skip needs a noise embedding (model.noise_embed != none)")
            self.noise_skip = NoiseLogitSkip(cfg.dim)
        self._init_weights()

    def _init_weights(self) -> None:
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * self.cfg.n_layers) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        gate = self.noise_skip.gate if self.noise_skip is not None else None
        for lin in [b.adaln for b in self.blocks] + [self.final_adaln, gate]:
            if lin is not None:  # adaLN-zero and the noise gate: conditioning starts as the identity
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int, max_len: int, static: bool = False) -> KVCache:
        p = self.embed.weight
        return KVCache(self.cfg, batch_size, max_len, device=p.device, dtype=p.dtype, static=static)

    def embed_inputs(self, idx, extra=None, extra_mask=None) -> torch.Tensor:
        """Token embeddings [B, L, H]; `extra` [B, L, H] replaces or is added where `extra_mask` [B, L] is True."""
        x = self.embed(idx)
        if extra is None:
            return x
        where = torch.ones_like(idx, dtype=torch.bool) if extra_mask is None else extra_mask
        extra = extra.to(x.dtype)
        if self.cfg.extra_mode == "replace":
            return torch.where(where[..., None], extra, x)
        return x + extra * where[..., None]

    def forward(self, idx: torch.Tensor, *, attn="bidirectional", positions: torch.Tensor | None = None,
                sigma: torch.Tensor | None = None, extra: torch.Tensor | None = None,
                extra_mask: torch.Tensor | None = None, cache: KVCache | None = None,
                cache_write: bool = False, noise=None, logits_at: torch.Tensor | None = None) -> ModelOutput:
        """idx: [B, L] long; positions: [L] or [B, L] (default: cache.length + arange(L)); sigma: [B] time.
        noise: [B, L, V] or SparseNoise, embedded by `noise_embed` into `extra` (Gumbel Distillation).
        A static cache (KVCache(static=True)) needs explicit 1-D `positions` and is always written there.
        logits_at: [B, L] bool: logits only at these positions, [N, V] in row-major order (the output head is
        the largest matmul at a GPT-2 vocabulary; samplers need it only where tokens are masked)."""
        bsz, length = idx.shape
        if noise is not None:
            if self.noise_embed is None:
                raise UserError("this model has no noise embedding (model.noise_embed=none): do not pass noise")
            extra = self.noise_embed(noise)
        need = None
        static = cache is not None and cache.static
        if static:  # causal decoding into a static cache: explicit 1-D positions, the mask comes from them
            if positions is None or positions.dim() != 1 or not isinstance(attn, str) or attn != "causal":
                raise UserError("a static KV cache decodes causally at explicit 1-D positions: pass "
                                "positions=tensor([...]) and attn='causal'")
            keys = cache.key_positions if cache.window is None else cache.key_positions[:cache.window]
            attn = keys[None, :] <= positions[:, None]  # [L, window or max_len]
            need = cache.max_len
        elif positions is None:
            start = cache.length if cache is not None else 0
            positions = torch.arange(start, start + length, device=idx.device)
            need = start + length
        x = self.embed_inputs(idx, extra, extra_mask)
        cos, sin = _rotary(positions, self.cfg.dim // self.cfg.n_heads, self.cfg.rope_base, x.dtype, need)
        cond = None
        if self.time_embed is not None and not self.cfg.time_conditioning:  # adaLN at the fixed time 0
            cond = F.silu(self.time_embed(torch.zeros(bsz, device=idx.device)))
        elif self.time_embed is not None:
            if sigma is None:
                raise UserError("this model is time-conditioned: pass sigma (the diffusion time) to forward")
            cond = F.silu(self.time_embed(sigma.reshape(-1).expand(bsz) if sigma.numel() == 1 else sigma))
        with decode_attention_context(x.device, cache is not None and not static):
            for layer, block in enumerate(self.blocks):
                x = block(x, cos, sin, attn, cache, layer, cond, positions if static else None)
        if cache is not None and cache_write and not static:
            cache.length += length
        h = self.norm(x)
        if self.final_adaln is not None:
            shift, scale = self.final_adaln(cond)[:, None].chunk(2, dim=-1)
            h = h * (1 + scale) + shift
        skip = noise is not None and self.noise_skip is not None
        if logits_at is not None and not skip and not self.cfg.output_shift:
            return ModelOutput(self.head(h[logits_at]).float(), h)
        logits = self.head(h).float()
        if skip:
            logits = logits + self.noise_skip(h, noise, extra_mask, self.cfg.vocab_size)
        if self.cfg.output_shift:
            if cache is not None:
                raise UserError("a model with output_shift (AR-adapted, shifted) needs whole-sequence forwards, "
                                "not a KV cache: sample it with an MDLM sampler")
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
            h = torch.cat([h[:, :1], h[:, :-1]], dim=1)
        return ModelOutput(logits if logits_at is None else logits[logits_at], h)
