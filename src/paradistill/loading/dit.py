"""The DDiT backbone shared by MDLM, BD3-LM, SDTT and Gumbel Distillation -> paradistill's `Transformer`.

DDiT (REFERENCE-MODELS §1): raw `vocab_embed.embedding` [V, d]; `sigma_map.mlp.{0,2}` (256-dim sinusoid of the
noise level sigma, cos first, then Linear-SiLU-Linear; c = SiLU(output)); blocks with bias-free LayerNorms,
`attn_qkv` [3d, d] (Q, K, V; heads contiguous), rotary on half-split pairs (i, i + hd/2), `attn_out`, a GELU(tanh)
MLP, and `adaLN_modulation` [6d, C] in the order shift, scale, gate (attention) then shift, scale, gate (MLP);
a final layer with adaLN (shift, scale) and an untied biased head. Gumbel students add
`gumbel_noise_embed.linear.weight` [d, V - 1].

The conversion keeps every parameter (169.6M for the small model, as published), so fine-tuning (SDTT, Gumbel
Distillation from BD3-LM) trains the same parametrisation as upstream. The backbone's adaLN has the same chunk
order; LayerNorm biases are zero; the time embedding takes the log-linear sigma(t) unscaled
(`time_input="loglinear_sigma"`):
- time conditioning off (every released OWT model: sigma is fed as 0): `adaln=True, time_conditioning=False`, the
  backbone feeds the fixed time 0 itself -> a time-agnostic model usable by every sampler;
- time conditioning on: `time_conditioning=True`, samplers pass the time.
Rotary layouts differ (ours rotates interleaved pairs), so the Q/K rows of every head are permuted.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ..errors import UserError
from ..models.transformer import ModelConfig

BLOCK_KEYS = ("norm1.weight", "attn_qkv.weight", "attn_out.weight", "norm2.weight", "mlp.0.weight", "mlp.0.bias",
              "mlp.2.weight", "mlp.2.bias", "adaLN_modulation.weight", "adaLN_modulation.bias")
TOP_KEYS = ("vocab_embed.embedding", "sigma_map.mlp.0.weight", "sigma_map.mlp.0.bias", "sigma_map.mlp.2.weight",
            "sigma_map.mlp.2.bias", "output_layer.norm_final.weight", "output_layer.linear.weight",
            "output_layer.linear.bias", "output_layer.adaLN_modulation.weight", "output_layer.adaLN_modulation.bias")
GUMBEL_KEY = "gumbel_noise_embed.linear.weight"
IGNORED = ("rotary_emb.inv_freq",)
ANCHOR = "vocab_embed.embedding"
HEADS_BY_WIDTH = {512: 8, 768: 12, 1024: 16, 1536: 16}  # MDLM / SDTT sizes (REFERENCE-MODELS §2, §4)


def backbone_prefix(names) -> str | None:
    """'backbone.' / 'backbone.backbone.' / '' in front of the DiT keys, or None if there are none."""
    hits = sorted((k for k in names if k.endswith(ANCHOR)), key=len)
    return hits[0][: -len(ANCHOR)] if hits else None


def is_dit(names) -> bool:
    prefix = backbone_prefix(names)
    return prefix is not None and f"{prefix}blocks.0.attn_qkv.weight" in set(names)


def strip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefix = backbone_prefix(state)
    if prefix is None:
        raise UserError(f"no '{ANCHOR}' tensor: not a DiT state dict (first keys {sorted(state)[:6]}); pass MDLM / "
                        "BD3-LM / SDTT / Gumbel-distill weights")
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def check_keys(state: dict[str, torch.Tensor], where: str) -> int:
    """Number of blocks; UserError listing missing / unexpected keys otherwise."""
    indices = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    n_blocks = max(indices) + 1 if indices else 0
    expected = set(TOP_KEYS) | {f"blocks.{i}.{k}" for i in range(n_blocks) for k in BLOCK_KEYS}
    got = {k for k in state if k not in IGNORED and k != GUMBEL_KEY}
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if n_blocks == 0 or missing or unexpected:
        raise UserError(f"'{where}' does not match the DiT layout: missing {missing[:6]}{' ...' * (len(missing) > 6)}"
                        f", unexpected {unexpected[:6]}{' ...' * (len(unexpected) > 6)}; pass MDLM-family DiT weights")
    return n_blocks


def guess_heads(dim: int, where: str, given: Any = None) -> int:
    heads = int(given) if given else HEADS_BY_WIDTH.get(dim)
    if heads is None:
        raise UserError(f"'{where}': cannot tell the number of attention heads of hidden size {dim} (no n_heads in "
                        "config.json): pass the option n_heads (e.g. load(ref, n_heads=12))")
    if dim % heads or (dim // heads) % 2:
        raise UserError(f"'{where}': hidden size {dim} does not split into {heads} heads of even size: pass the "
                        "model's n_heads")
    return heads


def _rotary_rows(dim: int, n_heads: int) -> torch.Tensor:
    """Row order putting DiT's pair (i, i + hd/2) onto our interleaved pair (2i, 2i + 1), per head."""
    d = dim // n_heads
    within = torch.stack([torch.arange(d // 2), torch.arange(d // 2) + d // 2], dim=1).reshape(-1)
    return torch.cat([h * d + within for h in range(n_heads)])


def convert(state: dict[str, torch.Tensor], n_heads: int, *, time_conditioning: bool, max_len: int = 1024,
            where: str = "checkpoint", inject_mode: str = "replace", time_eps: float = 1e-3,
            dropout: float = 0.0) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """DiT tensors (any prefix) -> (ModelConfig, our state dict). Gumbel weights become a dense noise embedding
    over the first V - 1 coordinates (MASK excluded), injected by `inject_mode` ('replace' | 'add')."""
    state = strip(state)
    n_blocks = check_keys(state, where)
    vocab, dim = state[ANCHOR].shape
    cond_dim = state["sigma_map.mlp.2.weight"].shape[0]
    mlp_hidden = state["blocks.0.mlp.0.weight"].shape[0]
    gumbel = state.get(GUMBEL_KEY)
    if gumbel is not None and tuple(gumbel.shape) != (dim, vocab - 1):
        raise UserError(f"'{where}': {GUMBEL_KEY} has shape {list(gumbel.shape)}, expected [{dim}, {vocab - 1}] "
                        "(hidden x vocabulary without MASK): the file is not a Gumbel-distill student")
    if inject_mode not in ("replace", "add"):
        raise UserError(f"'{where}': inject mode {inject_mode!r}: choose 'replace' or 'add' (gumbel_inject_mode)")
    cfg = ModelConfig(vocab_size=vocab, dim=dim, n_layers=n_blocks, n_heads=n_heads, mlp_ratio=mlp_hidden / dim,
                      dropout=dropout, tie_weights=False, head_bias=True, time_conditioning=time_conditioning, adaln=True,
                      cond_dim=cond_dim, max_len=max_len, time_input="loglinear_sigma", time_eps=time_eps,
                      noise_embed="dense" if gumbel is not None else "none",
                      noise_vocab=-1 if gumbel is not None else 0, extra_mode=inject_mode)
    cfg.validate()
    rows = _rotary_rows(dim, n_heads)
    zeros = torch.zeros(dim, dtype=torch.float64)
    out: dict[str, torch.Tensor] = {
        "embed.weight": state[ANCHOR], "norm.weight": state["output_layer.norm_final.weight"], "norm.bias": zeros,
        "time_embed.mlp.0.weight": state["sigma_map.mlp.0.weight"], "time_embed.mlp.0.bias": state["sigma_map.mlp.0.bias"],
        "time_embed.mlp.2.weight": state["sigma_map.mlp.2.weight"], "time_embed.mlp.2.bias": state["sigma_map.mlp.2.bias"],
        "final_adaln.weight": state["output_layer.adaLN_modulation.weight"],
        "final_adaln.bias": state["output_layer.adaLN_modulation.bias"]}
    for i in range(n_blocks):
        b = lambda k: state[f"blocks.{i}.{k}"]  # noqa: E731
        o = f"blocks.{i}."
        q, k, v = b("attn_qkv.weight").chunk(3, dim=0)
        out.update({o + "attn.qkv.weight": torch.cat([q[rows], k[rows], v]), o + "attn.proj.weight": b("attn_out.weight"),
                    o + "norm1.weight": b("norm1.weight"), o + "norm1.bias": zeros,
                    o + "norm2.weight": b("norm2.weight"), o + "norm2.bias": zeros,
                    o + "mlp.0.weight": b("mlp.0.weight"), o + "mlp.0.bias": b("mlp.0.bias"),
                    o + "mlp.2.weight": b("mlp.2.weight"), o + "mlp.2.bias": b("mlp.2.bias"),
                    o + "adaln.weight": b("adaLN_modulation.weight"), o + "adaln.bias": b("adaLN_modulation.bias")})
    out["head.weight"] = state["output_layer.linear.weight"]
    out["head.bias"] = state["output_layer.linear.bias"]
    if gumbel is not None:
        out["noise_embed.weight"] = gumbel.t()
    return cfg, {k: v.to(torch.float32).contiguous() for k, v in out.items()}


def ema_state(state: dict[str, torch.Tensor], ema: Any, where: str) -> dict[str, torch.Tensor]:
    """Apply a Lightning EMA entry ({'shadow_params': [...]} in backbone.parameters() order) to the backbone keys.
    The parameter order is the state-dict order of the backbone's tensors without its buffers."""
    shadow = ema.get("shadow_params") if isinstance(ema, dict) else None
    if not shadow:
        return state
    prefix = backbone_prefix(state) or ""
    params = [k for k in state if k.startswith(prefix) and not k.endswith(IGNORED)
              and not k.endswith(("sampling_eps_min", "sampling_eps_max"))]
    if len(shadow) < len(params) or any(tuple(shadow[i].shape) != tuple(state[k].shape)
                                        for i, k in enumerate(params)):
        raise UserError(f"'{where}': its EMA entry does not line up with the backbone parameters ({len(shadow)} "
                        f"shadow tensors, {len(params)} parameters): load the raw weights (use_ema=False)")
    return {**state, **{k: shadow[i].detach().to(state[k].dtype) for i, k in enumerate(params)}}


def dit_parameter_count(vocab: int, dim: int, blocks: int, cond: int, mlp_ratio: float = 4.0,
                        gumbel: bool = False) -> int:
    """Parameters of the published DDiT layout (REFERENCE-MODELS §1 table; rotary buffer excluded)."""
    hidden = int(mlp_ratio * dim)
    block = dim + 3 * dim * dim + dim * dim + dim + hidden * dim + hidden + dim * hidden + dim + 6 * dim * cond + 6 * dim
    top = vocab * dim + (cond * 256 + cond + cond * cond + cond) + dim + 2 * dim * cond + 2 * dim + vocab * dim + vocab
    return top + blocks * block + (dim * (vocab - 1) if gumbel else 0)
