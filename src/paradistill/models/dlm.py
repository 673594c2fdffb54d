"""Published diffusion-LM architectures as paradistill's own code: LLaDA (OLMo-derived) and Dream (Qwen2-derived).

Both are pre-norm Llama-style decoders run with FULL bidirectional attention: RMSNorm (weight only, computed in
float32), rotary positions in the half-split layout (rotate_half over cat(freqs, freqs), angles in float32),
grouped-query attention, a SiLU-gated MLP down(silu(gate x) * up x) and an untied output head. They differ in
three places, all carried by `DLMConfig`:

- LLaDA: no biases anywhere; logits unshifted (position i predicts token i); mask id 126336.
- Dream: biases on q / k / v; the AR-style head is kept, so the raw output at i predicts token i + 1. This module
  returns ALIGNED logits and hidden states: aligned[:, 0] = raw[:, 0], aligned[:, i] = raw[:, i - 1] (the official
  realignment), so every caller reads position i's distribution at i and `head(hidden) == logits` still holds
  (ADJUST reuses the head on shifted hidden states exactly like the official Dream sampler). Mask id 151666.

Internal parameter names are neutral (`embed`, `blocks.N.{attn_norm,q,k,v,o,mlp_norm,gate,up,down}`, `norm`,
`head`); `OFFICIAL_NAMES` maps them to each release's tensor names (models/official.py reads and writes those).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .transformer import ModelOutput

Arch = Literal["llada", "dream"]

# Per-architecture defaults of the published models (a trained-from-scratch small model keeps the same layout).
ARCH_DEFAULTS: dict[str, dict] = {
    "llada": {"qkv_bias": False, "shift_logits": False, "rope_base": 500000.0, "norm_eps": 1e-5},
    "dream": {"qkv_bias": True, "shift_logits": True, "rope_base": 1000000.0, "norm_eps": 1e-6},
}


@dataclass
class DLMConfig:
    arch: str = "llada"
    vocab_size: int = 0
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None  # grouped-query attention; None = n_heads
    mlp_hidden: int | None = None  # None = round(mlp_ratio * dim)
    mlp_ratio: float = 4.0
    rope_base: float | None = None  # None = the architecture's (LLaDA 5e5, Dream 1e6)
    norm_eps: float | None = None
    qkv_bias: bool | None = None  # None = the architecture's (Dream True)
    shift_logits: bool | None = None  # None = the architecture's (Dream True)
    tie_weights: bool = False
    max_len: int = 4096  # context length (prompt + generation)
    mask_id: int | None = None
    bos_id: int | None = None
    eos_id: int | None = None
    pad_id: int | None = None
    time_conditioning: bool = False  # never: these models are time-agnostic (kept for generic code)

    def validate(self) -> None:
        if self.arch not in ARCH_DEFAULTS:
            raise UserError(f"model.arch={self.arch!r}: choose one of {', '.join(ARCH_DEFAULTS)}")
        for key, value in ARCH_DEFAULTS[self.arch].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.mlp_hidden is None:
            self.mlp_hidden = int(round(self.mlp_ratio * self.dim))
        if self.vocab_size < 2:
            raise UserError(f"model.vocab_size={self.vocab_size}: must be >= 2 (it is set from the tokenizer)")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise UserError(f"model.dim={self.dim} must split into model.n_heads={self.n_heads} heads of even size")
        if self.n_heads % self.n_kv_heads:
            raise UserError(f"model.n_heads={self.n_heads} is not a multiple of model.n_kv_heads={self.n_kv_heads}")
        if self.time_conditioning:
            raise UserError(f"model.time_conditioning: the {self.arch} architecture has no time input: drop it")
        if self.mask_id is not None and not 0 <= self.mask_id < self.vocab_size:
            raise UserError(f"mask id {self.mask_id} is outside the vocabulary ({self.vocab_size})")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def num_parameters(self) -> int:
        with torch.device("meta"):
            return DiffusionLM(self).num_parameters()


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rotary(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """positions: [L] or [B, L] -> cos, sin [.., L, head_dim] in float32 (half-split layout)."""
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim))
    freqs = positions.float()[..., None] * inv
    emb = torch.cat([freqs, freqs], -1)
    return emb.cos(), emb.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: [B, heads, L, d]; cos/sin: [L, d] or [B, L, d]
    if cos.dim() == 3:
        cos, sin = cos[:, None], sin[:, None]
    half = x.shape[-1] // 2
    xf = x.float()
    rotated = torch.cat([-xf[..., half:], xf[..., :half]], -1)
    return (xf * cos + rotated * sin).to(x.dtype)


class Block(nn.Module):
    def __init__(self, cfg: DLMConfig):
        super().__init__()
        d, hd = cfg.dim, cfg.head_dim
        self.cfg = cfg
        self.attn_norm = RMSNorm(d, cfg.norm_eps)
        self.q = nn.Linear(d, cfg.n_heads * hd, bias=cfg.qkv_bias)
        self.k = nn.Linear(d, cfg.n_kv_heads * hd, bias=cfg.qkv_bias)
        self.v = nn.Linear(d, cfg.n_kv_heads * hd, bias=cfg.qkv_bias)
        self.o = nn.Linear(cfg.n_heads * hd, d, bias=False)
        self.mlp_norm = RMSNorm(d, cfg.norm_eps)
        self.gate = nn.Linear(d, cfg.mlp_hidden, bias=False)
        self.up = nn.Linear(d, cfg.mlp_hidden, bias=False)
        self.down = nn.Linear(cfg.mlp_hidden, d, bias=False)

    def forward(self, x, cos, sin, mask, causal: bool):
        b, n, _ = x.shape
        cfg = self.cfg
        h = self.attn_norm(x)
        q = self.q(h).view(b, n, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        k = self.k(h).view(b, n, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        v = self.v(h).view(b, n, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        groups = cfg.n_heads // cfg.n_kv_heads
        if groups > 1:
            k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        x = x + self.o(a.transpose(1, 2).reshape(b, n, -1))
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class DiffusionLM(nn.Module):
    """LLaDA / Dream backbone with the `Transformer` call signature (`attn`, `positions`), returning aligned
    `ModelOutput(logits float32 [B, L, V], hidden [B, L, H])`."""

    def __init__(self, cfg: DLMConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.head.weight = self.embed.weight
        if not self.embed.weight.is_meta:
            self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())

    def forward(self, idx: torch.Tensor, *, attn="bidirectional", positions=None, sigma=None, extra=None,
                extra_mask=None, cache=None, cache_write: bool = False,
                logits_at: torch.Tensor | None = None) -> ModelOutput:
        # idx: [B, L] long; attn: "bidirectional" | "causal" | bool mask [L, L] / [B, 1, L, L] (True = may attend);
        # logits_at: [B, L] bool -> logits [N, V] of those positions only (the head runs on N rows)
        if sigma is not None or extra is not None or cache is not None:
            raise UserError(f"the {self.cfg.arch} architecture takes no time, noise input or KV cache: use it as a "
                            "plain masked-diffusion model (kind mdlm-style samplers)")
        b, n = idx.shape
        if n > self.cfg.max_len:
            raise UserError(f"sequence of {n} tokens is longer than the {self.cfg.arch} context "
                            f"({self.cfg.max_len}): shorten the prompt or the generation length")
        if positions is None:
            positions = torch.arange(n, device=idx.device)
        cos, sin = rotary(positions, self.cfg.head_dim, self.cfg.rope_base)
        mask, causal = (None, attn == "causal") if isinstance(attn, str) else (attn, False)
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, cos, sin, mask, causal)
        h = self.norm(x)
        if self.cfg.shift_logits:  # output i predicts token i + 1: read position i from output i - 1
            h = torch.cat([h[:, :1], h[:, :-1]], 1)
        if logits_at is not None:
            return ModelOutput(self.head(h[logits_at]).float(), h)
        return ModelOutput(self.head(h).float(), h)


# internal name suffix -> official tensor name (N = layer index); per architecture
OFFICIAL_NAMES: dict[str, dict[str, str]] = {
    "llada": {
        "embed.weight": "model.transformer.wte.weight",
        "norm.weight": "model.transformer.ln_f.weight",
        "head.weight": "model.transformer.ff_out.weight",
        "attn_norm.weight": "model.transformer.blocks.{N}.attn_norm.weight",
        "q.weight": "model.transformer.blocks.{N}.q_proj.weight",
        "k.weight": "model.transformer.blocks.{N}.k_proj.weight",
        "v.weight": "model.transformer.blocks.{N}.v_proj.weight",
        "o.weight": "model.transformer.blocks.{N}.attn_out.weight",
        "mlp_norm.weight": "model.transformer.blocks.{N}.ff_norm.weight",
        "gate.weight": "model.transformer.blocks.{N}.ff_proj.weight",
        "up.weight": "model.transformer.blocks.{N}.up_proj.weight",
        "down.weight": "model.transformer.blocks.{N}.ff_out.weight",
    },
    "dream": {
        "embed.weight": "model.embed_tokens.weight",
        "norm.weight": "model.norm.weight",
        "head.weight": "lm_head.weight",
        "attn_norm.weight": "model.layers.{N}.input_layernorm.weight",
        "q.weight": "model.layers.{N}.self_attn.q_proj.weight",
        "q.bias": "model.layers.{N}.self_attn.q_proj.bias",
        "k.weight": "model.layers.{N}.self_attn.k_proj.weight",
        "k.bias": "model.layers.{N}.self_attn.k_proj.bias",
        "v.weight": "model.layers.{N}.self_attn.v_proj.weight",
        "v.bias": "model.layers.{N}.self_attn.v_proj.bias",
        "o.weight": "model.layers.{N}.self_attn.o_proj.weight",
        "mlp_norm.weight": "model.layers.{N}.post_attention_layernorm.weight",
        "gate.weight": "model.layers.{N}.mlp.gate_proj.weight",
        "up.weight": "model.layers.{N}.mlp.up_proj.weight",
        "down.weight": "model.layers.{N}.mlp.down_proj.weight",
    },
}


def official_name(arch: str, name: str) -> str:
    """'blocks.3.q.weight' -> 'model.transformer.blocks.3.q_proj.weight' (LLaDA)."""
    table = OFFICIAL_NAMES[arch]
    if name.startswith("blocks."):
        _, n, rest = name.split(".", 2)
        return table[rest].format(N=n)
    return table[name]


def internal_names(arch: str, n_layers: int) -> dict[str, str]:
    """official tensor name -> internal name, for every tensor of an `n_layers` model."""
    out = {}
    for suffix, official in OFFICIAL_NAMES[arch].items():
        if "{N}" in official:
            out.update({official.format(N=i): f"blocks.{i}.{suffix}" for i in range(n_layers)})
        else:
            out[official] = suffix
    return out
