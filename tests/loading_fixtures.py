"""Helpers for the loader tests: checkpoints in the OFFICIAL tensor layouts (random weights, non-zero adaLN), an
independent reference forward of the DDiT written from the published architecture description
(../shared/docs/REFERENCE-MODELS.md §1, §3, §5), a GPT-2-style tokenizer, and a huggingface_hub cache builder."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F

D, HEADS, BLOCKS, COND, LENGTH = 32, 4, 2, 16, 16


# ------------------------------------------------------------------------------------------------ tokenizer
def byte_chars() -> list[str]:
    """GPT-2's byte -> printable unicode table (the byte-level alphabet)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return [chars[b] for b in range(256)]


def write_gpt2_style_tokenizer(folder: Path) -> int:
    """vocab.json (256 byte tokens + <|endoftext|>) and an empty merges.txt: GPT-2's format, tiny. Returns the
    model vocabulary (257 + MASK = 258)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {c: i for i, c in enumerate(byte_chars())}
    vocab["<|endoftext|>"] = 256
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return 258


VOCAB = 258


# ------------------------------------------------------------------------------------------------ official weights
def dit_state(seed: int, vocab: int = VOCAB, dim: int = D, blocks: int = BLOCKS, cond: int = COND,
              gumbel: bool = False) -> dict[str, torch.Tensor]:
    """Random DiT tensors with the official names and shapes; adaLN weights far from zero."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    s = {"vocab_embed.embedding": r(vocab, dim, scale=1.0), "rotary_emb.inv_freq": torch.ones(dim // HEADS // 2),
         "sigma_map.mlp.0.weight": r(cond, 256), "sigma_map.mlp.0.bias": r(cond),
         "sigma_map.mlp.2.weight": r(cond, cond), "sigma_map.mlp.2.bias": r(cond)}
    for i in range(blocks):
        p = f"blocks.{i}."
        s.update({p + "norm1.weight": 1 + r(dim), p + "attn_qkv.weight": r(3 * dim, dim),
                  p + "attn_out.weight": r(dim, dim), p + "norm2.weight": 1 + r(dim),
                  p + "mlp.0.weight": r(4 * dim, dim), p + "mlp.0.bias": r(4 * dim),
                  p + "mlp.2.weight": r(dim, 4 * dim), p + "mlp.2.bias": r(dim),
                  p + "adaLN_modulation.weight": r(6 * dim, cond), p + "adaLN_modulation.bias": r(6 * dim)})
    s.update({"output_layer.norm_final.weight": 1 + r(dim), "output_layer.linear.weight": r(vocab, dim),
              "output_layer.linear.bias": r(vocab), "output_layer.adaLN_modulation.weight": r(2 * dim, cond),
              "output_layer.adaLN_modulation.bias": r(2 * dim)})
    if gumbel:
        s["gumbel_noise_embed.linear.weight"] = r(dim, vocab - 1, scale=1.0)
    return s


# ------------------------------------------------------------------------------------------------ reference forward
def _layer_norm(x, w):
    return F.layer_norm(x.float(), (x.shape[-1],)) * w


def _rope_half(x, pos):
    """x: [B, L, H, hd]; rotate pairs (i, i + hd/2) by pos * 10000^(-2i/hd)."""
    hd = x.shape[-1]
    inv = 1.0 / (10000 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = pos.double()[:, None] * inv[None]  # [L, hd/2]
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1).float(), torch.cat([ang.sin(), ang.sin()], -1).float()
    rot = torch.cat([-x[..., hd // 2:], x[..., : hd // 2]], dim=-1)
    return x * cos[None, :, None] + rot * sin[None, :, None]


def reference_logits(state, x, *, sigma=None, mask=None, positions=None, noise=None, inject=None, mask_id=None):
    """The DDiT forward from its description. x: [B, L] long; sigma: [B] noise level (None: zeros, i.e. time
    conditioning off); mask: [L, L] bool (True = may attend) or None (bidirectional); noise: [B, L, V-1] Gumbel
    noise injected at positions where x == mask_id ('replace' | 'add')."""
    b, n = x.shape
    emb = state["vocab_embed.embedding"][x]
    if noise is not None:
        u = torch.softmax(noise.float(), -1) @ state["gumbel_noise_embed.linear.weight"].t()
        where = (x == mask_id)[..., None]
        emb = torch.where(where, u, emb) if inject == "replace" else emb + u * where
    sig = torch.zeros(b) if sigma is None else sigma
    half = 128
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = sig[:, None].float() * freqs[None]
    t_emb = torch.cat([torch.cos(args), torch.sin(args)], -1)
    h = F.silu(t_emb @ state["sigma_map.mlp.0.weight"].t() + state["sigma_map.mlp.0.bias"])
    c = F.silu(h @ state["sigma_map.mlp.2.weight"].t() + state["sigma_map.mlp.2.bias"])  # [B, C]
    pos = torch.arange(n) if positions is None else positions
    hd = D // HEADS
    i = 0
    h = emb
    while f"blocks.{i}.norm1.weight" in state:
        p = lambda k: state[f"blocks.{i}.{k}"]  # noqa: E731
        mod = c @ p("adaLN_modulation.weight").t() + p("adaLN_modulation.bias")
        sh1, sc1, g1, sh2, sc2, g2 = [m[:, None] for m in mod.chunk(6, -1)]
        a = _layer_norm(h, p("norm1.weight")) * (1 + sc1) + sh1
        qkv = (a @ p("attn_qkv.weight").t()).view(b, n, 3, HEADS, hd)
        q, k, v = _rope_half(qkv[:, :, 0], pos), _rope_half(qkv[:, :, 1], pos), qkv[:, :, 2]
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(hd)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        att = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v).reshape(b, n, D)
        h = h + g1 * (att @ p("attn_out.weight").t())
        a = _layer_norm(h, p("norm2.weight")) * (1 + sc2) + sh2
        m = F.gelu(a @ p("mlp.0.weight").t() + p("mlp.0.bias"), approximate="tanh")
        h = h + g2 * (m @ p("mlp.2.weight").t() + p("mlp.2.bias"))
        i += 1
    sh, sc = [m[:, None] for m in (c @ state["output_layer.adaLN_modulation.weight"].t()
                                   + state["output_layer.adaLN_modulation.bias"]).chunk(2, -1)]
    h = _layer_norm(h, state["output_layer.norm_final.weight"]) * (1 + sc) + sh
    return h @ state["output_layer.linear.weight"].t() + state["output_layer.linear.bias"]


def block_diff_mask(n: int, bs: int) -> torch.Tensor:
    """BD3-LM's mask over [x_t ; x0] (2n), from REFERENCE-MODELS §3."""
    q = torch.arange(2 * n)[:, None]
    k = torch.arange(2 * n)[None]
    hq, hk = q >= n, k >= n
    bq, bk = (q % n) // bs, (k % n) // bs
    return ((bq == bk) & (hq == hk)) | (~hq & hk & (bq > bk)) | (hq & hk & (bq >= bk))


# ------------------------------------------------------------------------------------------------ files
def save_safetensors(state: dict, folder: Path, prefix: str = "backbone.", config: dict | None = None,
                     tokenizer: bool = True) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({prefix + k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    if tokenizer:
        write_gpt2_style_tokenizer(folder)
    return folder


def mdlm_hub_config(**changes) -> dict:
    cfg = {"architectures": ["MDLM"], "model_type": "mdlm", "cond_dim": COND, "dropout": 0.1, "hidden_dim": D,
           "model_length": LENGTH, "n_blocks": BLOCKS, "n_heads": HEADS, "return_dict": False,
           "time_conditioning": False, "vocab_size": VOCAB,
           "auto_map": {"AutoConfig": "configuration_mdlm.MDLMConfig", "AutoModelForMaskedLM": "modeling_mdlm.MDLM"}}
    cfg.update(changes)
    return cfg


def bd3lm_hub_config(block_size: int, **changes) -> dict:
    cfg = mdlm_hub_config(architectures=["BD3LM"], model_type="bd3lm", block_size=block_size, cross_attn=True,
                          attn_backend="sdpa", var_min=True, sampling_eps_min=1e-3, sampling_eps_max=0.999)
    cfg.update(changes)
    return cfg


def sdtt_config() -> dict:
    """An OmegaConf-style dump of SDTT's Hydra config (the fields the loader reads)."""
    return {"model": {"name": "dit-orig-small", "hidden_size": D, "cond_dim": COND, "length": LENGTH,
                      "n_blocks": BLOCKS, "n_heads": HEADS, "dropout": 0.1},
            "parameterization": {"name": "multi-round-sdtt", "distill_mode": "kl-bwd", "num_distill_steps": 2},
            "time_conditioning": False, "noise": {"type": "loglinear", "eps": 1e-3}}


def add_to_hub_cache(cache: Path, repo: str, files: dict[str, Path], revision: str = "main",
                     commit: str | None = None) -> str:
    """Put `files` (name -> source) into `cache` in huggingface_hub's layout: blobs/<hash>, snapshots/<commit>/
    name -> ../../blobs/<hash>, refs/<revision> = commit. Returns the commit hash."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    commit = commit or hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    snap = folder / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        digest = hashlib.sha256(Path(src).read_bytes()).hexdigest()
        blob = folder / "blobs" / digest
        if not blob.exists():
            shutil.copyfile(src, blob)
        link = snap / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(Path("../" * (name.count("/") + 2)) / "blobs" / digest)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / revision).write_text(commit)
    return commit
