"""Load MDLM DiT weights (kuleshov-group/mdlm layout, e.g. the public `mdlm-owt` checkpoint) into our backbone.

MDLM's DiT: `vocab_embed.embedding` [V, H]; `sigma_map.mlp.{0,2}` (time MLP); per block `norm1.weight`,
`attn_qkv.weight` [3H, H], `attn_out.weight`, `norm2.weight`, `mlp.{0,2}.{weight,bias}`, `adaLN_modulation`
[6H, C] (shift/scale/gate for attention and MLP); `output_layer.{norm_final.weight, linear.{weight,bias},
adaLN_modulation}`; LayerNorms without bias; rotary on (i, i + d/2) pairs. Keys may carry a prefix
(`backbone.` in the HF and Lightning checkpoints).

The published OWT model was trained with time conditioning off: MDLM then feeds sigma = 0, so every adaLN
output is a constant vector. We fold those constants into plain weights (exact algebra, no approximation):
LayerNorm weight * (1 + scale) and bias = shift, gates multiplied into the output projections, and the rotary
pair layout matched by permuting the q/k rows of each head. The result is an ordinary time-agnostic paradistill
MDLM (with `head_bias`) whose logits equal MDLM's at sigma = 0.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoint import save_checkpoint
from ..diffusion.objectives import DiffusionConfig
from ..errors import UserError
from ..models.transformer import ModelConfig, Transformer

BLOCK_KEYS = ("norm1.weight", "attn_qkv.weight", "attn_out.weight", "norm2.weight", "mlp.0.weight", "mlp.0.bias",
              "mlp.2.weight", "mlp.2.bias", "adaLN_modulation.weight", "adaLN_modulation.bias")
TOP_KEYS = ("vocab_embed.embedding", "sigma_map.mlp.0.weight", "sigma_map.mlp.0.bias", "sigma_map.mlp.2.weight",
            "sigma_map.mlp.2.bias", "output_layer.norm_final.weight", "output_layer.linear.weight",
            "output_layer.linear.bias", "output_layer.adaLN_modulation.weight", "output_layer.adaLN_modulation.bias")
IGNORED = ("rotary_emb.inv_freq",)


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, config.json beside them or {}) from a directory, .safetensors, or a torch/Lightning file."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"MDLM checkpoint '{p}' does not exist: pass a directory with model.safetensors, a "
                        ".safetensors file or a Lightning .ckpt")
    config = {}
    if p.is_dir():
        if (p / "config.json").is_file():
            config = json.loads((p / "config.json").read_text())
        files = [p / n for n in ("model.safetensors", "pytorch_model.bin") if (p / n).is_file()]
        if not files:
            raise UserError(f"'{p}' has no model.safetensors or pytorch_model.bin: pass the MDLM weights file")
        p = files[0]
    elif (p.parent / "config.json").is_file():
        config = json.loads((p.parent / "config.json").read_text())
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(p)), config
        except (SafetensorError, OSError, ValueError) as e:
            raise UserError(f"'{p}' is truncated or corrupt ({e}): pass intact MDLM weights") from None
    try:
        obj = torch.load(p, map_location="cpu", weights_only=False)  # Lightning checkpoints pickle configs: trusted files
    except Exception as e:  # truncated zip, not a torch file, ...
        first = (str(e).splitlines() or [""])[0][:120]
        raise UserError(f"'{p}' cannot be read as torch weights ({type(e).__name__}: {first}): "
                        "pass an intact MDLM .ckpt, .safetensors or weights directory") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise UserError(f"'{p}' does not hold a state dict: pass MDLM weights")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}, config


def strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    anchor = "vocab_embed.embedding"
    hits = [k for k in state if k.endswith(anchor)]
    if not hits:
        close = sorted(state)[:8]
        raise UserError(f"no '{anchor}' key: this is not an MDLM DiT state dict (first keys: {close}); expected "
                        f"keys like {list(TOP_KEYS[:2])} and 'blocks.0.attn_qkv.weight'")
    prefix = hits[0][: -len(anchor)]
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def check_keys(state: dict[str, torch.Tensor]) -> int:
    """Number of blocks; UserError listing missing / unexpected keys otherwise."""
    indices = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    n_blocks = max(indices) + 1 if indices else 0
    expected = set(TOP_KEYS) | {f"blocks.{i}.{k}" for i in range(n_blocks) for k in BLOCK_KEYS}
    got = {k for k in state if k not in IGNORED}
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if n_blocks == 0 or missing or unexpected:
        raise UserError(f"MDLM state dict does not match the DiT layout: missing {missing[:10]}"
                        f"{' ...' if len(missing) > 10 else ''}, unexpected {unexpected[:10]}"
                        f"{' ...' if len(unexpected) > 10 else ''}; pass weights of kuleshov-group/mdlm's DiT "
                        "(e.g. mdlm-owt's model.safetensors)")
    return n_blocks


def _silu_time_condition(state) -> torch.Tensor:
    """c = silu(sigma_map(0)): the constant conditioning vector of a model run with sigma = 0. [C]"""
    w1 = state["sigma_map.mlp.0.weight"].double()
    freq = w1.shape[1]
    t_freq = torch.cat([torch.ones(freq // 2), torch.zeros(freq - freq // 2)]).double()  # cos(0), sin(0)
    h = F.silu(w1 @ t_freq + state["sigma_map.mlp.0.bias"].double())
    return F.silu(state["sigma_map.mlp.2.weight"].double() @ h + state["sigma_map.mlp.2.bias"].double())


def _rotary_rows(dim: int, n_heads: int) -> torch.Tensor:
    """Row order mapping MDLM's (i, i + d/2) rotary pairs onto our interleaved (2i, 2i+1) pairs, per head."""
    d = dim // n_heads
    within = torch.stack([torch.arange(d // 2), torch.arange(d // 2) + d // 2], dim=1).reshape(-1)
    return torch.cat([h * d + within for h in range(n_heads)])


def convert(state: dict[str, torch.Tensor], n_heads: int, max_len: int = 1024):
    """MDLM DiT tensors -> (ModelConfig, our state dict), folding the sigma = 0 conditioning."""
    state = strip_prefix(state)
    n_blocks = check_keys(state)
    vocab, dim = state["vocab_embed.embedding"].shape
    cond_dim = state["sigma_map.mlp.2.weight"].shape[0]
    if dim % n_heads or (dim // n_heads) % 2:
        raise UserError(f"hidden size {dim} does not split into {n_heads} heads of even size: pass the model's "
                        "n_heads (--n-heads; mdlm-owt: 12)")
    mlp_hidden = state["blocks.0.mlp.0.weight"].shape[0]
    cfg = ModelConfig(vocab_size=vocab, dim=dim, n_layers=n_blocks, n_heads=n_heads, mlp_ratio=mlp_hidden / dim,
                      tie_weights=False, head_bias=True, time_conditioning=False, cond_dim=cond_dim, max_len=max_len)
    c = _silu_time_condition(state)
    rows = _rotary_rows(dim, n_heads)
    out = {"embed.weight": state["vocab_embed.embedding"]}
    for i in range(n_blocks):
        b = lambda k: state[f"blocks.{i}.{k}"]  # noqa: E731
        mod = (b("adaLN_modulation.weight").double() @ c + b("adaLN_modulation.bias").double())
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6)
        q, k, v = b("attn_qkv.weight").chunk(3, dim=0)
        o = f"blocks.{i}."
        out[o + "norm1.weight"] = b("norm1.weight").double() * (1 + scale1)
        out[o + "norm1.bias"] = shift1
        out[o + "attn.qkv.weight"] = torch.cat([q[rows], k[rows], v])
        out[o + "attn.proj.weight"] = gate1[:, None] * b("attn_out.weight").double()
        out[o + "norm2.weight"] = b("norm2.weight").double() * (1 + scale2)
        out[o + "norm2.bias"] = shift2
        out[o + "mlp.0.weight"], out[o + "mlp.0.bias"] = b("mlp.0.weight"), b("mlp.0.bias")
        out[o + "mlp.2.weight"] = gate2[:, None] * b("mlp.2.weight").double()
        out[o + "mlp.2.bias"] = gate2 * b("mlp.2.bias").double()
    shift, scale = (state["output_layer.adaLN_modulation.weight"].double() @ c
                    + state["output_layer.adaLN_modulation.bias"].double()).chunk(2)
    out["norm.weight"] = state["output_layer.norm_final.weight"].double() * (1 + scale)
    out["norm.bias"] = shift
    out["head.weight"] = state["output_layer.linear.weight"]
    out["head.bias"] = state["output_layer.linear.bias"]
    dtype = state["vocab_embed.embedding"].dtype if state["vocab_embed.embedding"].is_floating_point() else torch.float32
    return cfg, {k: v.to(torch.float32 if dtype == torch.float64 else dtype).contiguous() for k, v in out.items()}


def load_mdlm(path: str | Path, n_heads: int | None = None):
    """A paradistill `Transformer` with MDLM DiT weights (time-agnostic checkpoints only)."""
    state, config = read_state_dict(path)
    if config.get("time_conditioning"):
        raise UserError(f"'{path}' was trained with time conditioning (config.json time_conditioning=true): only "
                        "time-agnostic MDLM checkpoints (like mdlm-owt) fold into the paradistill backbone")
    heads = n_heads or config.get("n_heads") or 12
    cfg, weights = convert(state, int(heads), max_len=max(1024, int(config.get("model_length", 1024))))
    model = Transformer(cfg)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:  # cannot happen after check_keys unless the layouts drift apart
        raise UserError(f"converted MDLM weights do not fit the backbone (missing {missing[:5]}, unexpected "
                        f"{unexpected[:5]})")
    return model.float().eval(), config


def import_mdlm(path: str | Path, out: str | Path, tokenizer, n_heads: int | None = None,
                seq_len: int | None = None) -> Path:
    """Write a paradistill 'mdlm' checkpoint from MDLM weights; `tokenizer` must have the model's vocab size."""
    from dataclasses import asdict

    model, config = load_mdlm(path, n_heads)
    if tokenizer.vocab_size != model.cfg.vocab_size:
        raise UserError(f"tokenizer has {tokenizer.vocab_size} ids but the MDLM checkpoint {model.cfg.vocab_size}: "
                        "pass the model's tokenizer (mdlm-owt: GPT-2 + [MASK], --tokenizer gpt2:DIR or hf:gpt2)")
    length = int(seq_len or config.get("model_length", 1024))
    method = {"seq_len": length, "data_mode": "wrap", "recipe": "mdlm-import", "keep_bos": False,
              "diffusion": asdict(DiffusionConfig(keep_bos=False)), "source": str(path)}
    return save_checkpoint(Path(out), model, "mdlm", tokenizer, method)
