"""Dry-run plans for the published diffusion LMs (no weights needed): sampling LLaDA / Dream, and ADJUST on them.

A base is named by a local directory (its config.json) or by one of the releases in `PUBLISHED` (their config
values, models/official.py reads them like a downloaded config.json). Costs are a roofline estimate on a named
device, with the assumptions printed:
- a forward of B x L tokens costs 2 * (matmul parameters) * B * L + 4 * layers * B * L^2 * H FLOPs (attention);
  it takes max(FLOPs / (peak * MFU), weight bytes / HBM bandwidth) (at batch 1 decoding is memory-bound);
- sampling memory: the weights in the dtype, plus float32 logits and log-probs (and float64 draws) of B x L x V,
  plus a few hidden-state buffers;
- ADJUST training: the frozen base forward per example (state 0), k sampler passes forward + backward
  (3x a forward) of a one-block sampler, fp32 master weights + AdamW moments for the sampler only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

from ..distill.adjust import SamplerLayer, sampler_config_for
from ..errors import UserError
from ..memory import human
from ..models.dlm import DLMConfig
from ..models.official import config_from_official, detect_format, read_json

# config.json values of the releases (../shared/docs/REFERENCE-MODELS.md sections 6-7)
_DREAM = {"model_type": "Dream", "architectures": ["DreamModel"], "hidden_size": 3584, "intermediate_size": 18944,
          "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
          "max_position_embeddings": 131072, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
          "tie_word_embeddings": False, "mask_token_id": 151666, "pad_token_id": 151643, "bos_token_id": 151643,
          "eos_token_id": 151643}
_LLADA = {"model_type": "llada", "architectures": ["LLaDAModelLM"], "d_model": 4096, "n_layers": 32, "n_heads": 32,
          "n_kv_heads": 32, "mlp_hidden_size": 12288, "embedding_size": 126464, "vocab_size": 126464,
          "max_sequence_length": 4096, "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "include_qkv_bias": False,
          "weight_tying": False, "mask_token_id": 126336, "eos_token_id": 126081, "pad_token_id": 126081}
PUBLISHED = {"Dream-org/Dream-v0-Base-7B": _DREAM, "Dream-org/Dream-v0-Instruct-7B": _DREAM,
             "GSAI-ML/LLaDA-8B-Base": _LLADA, "GSAI-ML/LLaDA-8B-Instruct": _LLADA}


@dataclass(frozen=True)
class Device:
    name: str
    bf16_flops: float  # dense peak, FLOP/s
    fp32_flops: float
    bandwidth: float  # bytes/s
    memory: float  # bytes


DEVICES = {"h100": Device("NVIDIA H100 SXM 80GB", 989e12, 67e12, 3.35e12, 80 * 1024 ** 3),
           "h200": Device("NVIDIA H200 141GB", 989e12, 67e12, 4.8e12, 141 * 1024 ** 3),
           "a100": Device("NVIDIA A100 SXM 80GB", 312e12, 19.5e12, 2.0e12, 80 * 1024 ** 3)}
MFU = 0.4  # assumed fraction of the peak reached by large matmuls


def base_config(ref: str) -> tuple[str, DLMConfig]:
    """(name, DLMConfig) of a local LLaDA / Dream directory or a release named hf:ORG/NAME (or ORG/NAME)."""
    name = ref[3:] if ref.startswith("hf:") else ref
    if name in PUBLISHED:
        raw = PUBLISHED[name]
        arch = "dream" if raw["model_type"] == "Dream" else "llada"
        return name, config_from_official(arch, dict(raw), f"release {name}")
    path = Path(ref)
    arch = detect_format(path) if path.is_dir() else None
    if arch is None:
        raise UserError(f"'{ref}' is neither a LLaDA / Dream directory nor one of the releases this plan knows "
                        f"({', '.join(PUBLISHED)}): pass one of those")
    return str(path), config_from_official(arch, read_json(path / "config.json"), f"'{path / 'config.json'}'")


def forward_flops(cfg: DLMConfig, batch: int, length: int) -> float:
    matmul = cfg.num_parameters() - cfg.vocab_size * cfg.dim  # the embedding lookup is no matmul
    return 2.0 * matmul * batch * length + 4.0 * cfg.n_layers * batch * length * length * cfg.dim


def forward_seconds(cfg: DLMConfig, batch: int, length: int, device: Device, dtype_bytes: int) -> float:
    peak = device.bf16_flops if dtype_bytes == 2 else device.fp32_flops
    return max(forward_flops(cfg, batch, length) / (peak * MFU), cfg.num_parameters() * dtype_bytes / device.bandwidth)


def get_device(name: str) -> Device:
    if name not in DEVICES:
        raise UserError(f"--plan-device {name!r}: choose one of {', '.join(DEVICES)}")
    return DEVICES[name]


def plan_sampling(ref: str, prompt_tokens: int, gen_length: int, steps: int, batch: int = 1, dtype: str = "bf16",
                  device: str = "h100") -> dict:
    """Memory and time per generated token of sampling `ref` (one forward per step over prompt + generation)."""
    name, cfg = base_config(ref)
    dev = get_device(device)
    size = 2 if dtype in ("bf16", "fp16") else 4
    length = prompt_tokens + gen_length
    if length > cfg.max_len:
        raise UserError(f"prompt + generation = {length} tokens exceed the {cfg.arch} context ({cfg.max_len}): "
                        "shorten them")
    weights = cfg.num_parameters() * size
    act = batch * length * (cfg.vocab_size * (4 + 4 + 8) + 8 * max(cfg.dim, cfg.mlp_hidden) * size)
    per_forward = forward_seconds(cfg, batch, length, dev, size)
    return {"base": name, "arch": cfg.arch, "parameters": cfg.num_parameters(), "dtype": dtype,
            "device": dev.name, "batch": batch, "prompt_tokens": prompt_tokens, "gen_length": gen_length,
            "steps": steps, "memory_bytes": weights + act, "fits": weights + act < 0.9 * dev.memory,
            "seconds_per_forward": per_forward, "seconds_per_sample_batch": steps * per_forward,
            "ms_per_generated_token": 1000 * steps * per_forward / (gen_length * batch),
            "assumptions": f"roofline: max(FLOPs / ({MFU:.0%} of {dev.bf16_flops / 1e12:.0f} TFLOP/s), weights / "
                           f"{dev.bandwidth / 1e12:.2f} TB/s) per forward; one forward per step, no KV cache"}


def plan_adjust(ref: str, recipe, device: str = "h100") -> dict:
    """Trajectory recording and sampler training of ADJUST with `recipe.adjust` on the base `ref`."""
    name, cfg = base_config(ref)
    a, dev, length = recipe.adjust, get_device(device), recipe.data.seq_len
    dim = a.dim or cfg.dim
    shape = SimpleNamespace(embed_size=cfg.dim, hidden_size=cfg.dim, rope_base=cfg.rope_base)
    with torch.device("meta"):
        sampler = sum(p.numel() for p in SamplerLayer(sampler_config_for(shape, a, cfg.n_heads)).parameters())
    generated = length - 1
    traj_flops = a.trajectories * generated * forward_flops(cfg, 1, length)
    traj_seconds = a.trajectories * generated * forward_seconds(cfg, a.traj_batch_size, length, dev, 2) / a.traj_batch_size
    mean_k = sum(k * a.unroll_p * (1 - a.unroll_p) ** (k - 1) for k in range(1, a.max_unroll)) + \
        a.max_unroll * (1 - a.unroll_p) ** (a.max_unroll - 1)
    head = 2 * cfg.dim * cfg.vocab_size
    sampler_pass = 2 * (sampler + head // 2) * a.batch_size * length + 4 * a.batch_size * length ** 2 * dim
    step_flops = (0 if a.cache_hidden else forward_flops(cfg, a.batch_size, length)) + 3 * mean_k * sampler_pass
    step_seconds = step_flops / (dev.bf16_flops * MFU)
    cache = a.trajectories * length * length * cfg.dim * 2
    memory = cfg.num_parameters() * 2 + 16 * sampler + a.batch_size * length * (3 * cfg.vocab_size * 4 + 34 * cfg.dim * 2)
    return {"base": name, "arch": cfg.arch, "base_parameters": cfg.num_parameters(), "sampler_parameters": sampler,
            "device": dev.name, "trajectories": a.trajectories, "length": length,
            "trajectory_flops": traj_flops, "trajectory_hours": traj_seconds / 3600,
            "hidden_cache_bytes": cache, "cache_hidden": a.cache_hidden,
            "train_steps": a.steps, "batch_size": a.batch_size, "max_unroll": a.max_unroll, "mean_unroll": mean_k,
            "train_hours": a.steps * step_seconds / 3600, "memory_bytes": memory,
            "fits": memory < 0.9 * dev.memory,
            "assumptions": f"roofline at {MFU:.0%} of {dev.bf16_flops / 1e12:.0f} TFLOP/s bf16; trajectories one "
                           "token per full pass (batched); a training step = one frozen base forward (unless the "
                           "hidden states are cached) + mean-k sampler passes x3 (forward + backward)"}


def format_plan(plan: dict) -> str:
    lines = []
    for k, v in plan.items():
        if k.endswith("bytes"):
            v = human(v)
        elif isinstance(v, float):
            v = f"{v:.4g}"
        elif isinstance(v, int) and v > 10 ** 6:
            v = f"{v / 1e9:.3f} B" if v > 10 ** 9 else f"{v / 1e6:.1f} M"
        lines.append(f"  {k}: {v}")
    return "\n".join(lines)


def to_json(plan: dict) -> str:
    return json.dumps({k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in plan.items()},
                      indent=2)

