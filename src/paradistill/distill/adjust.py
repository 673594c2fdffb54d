"""ADJUST joint sampler (Bansal & Sanghavi 2025, arXiv 2509.22738): a small trained layer that lets one full
pass of a frozen masked-diffusion LM be followed by K-1 cheap passes, each conditioning the logits on the
tokens just sampled.

Sampler layer (one parameter set shared across passes):
    h^(j) = h^(j-1) + norm(block(W_down [norm(E(x^(j))) ; norm(h^(j-1))]))     logits^(j) = head(h^(j))
with E the frozen token embedding, h^(0) the frozen model's last hidden state, `block` one bidirectional block
of the project's backbone and `head` the frozen output head. The output norm's gain starts at zero, so an
untrained sampler is exactly the marginal baseline.

Training (only the sampler trains): from a recorded one-token-per-pass trajectory state, teacher-force k recorded
tokens (k ~ truncated geometric, <= max_unroll) through k sampler passes; loss = forward KL(p_full(.|x^(j)) ||
p_sampler^(j)) over positions still masked, p_full from a fresh frozen full pass on x^(j).
The adapter: adjust_adapters.py; the decoding loop: adjust_decode.py; trajectories on disk: adjust_store.py;
recording + training (the driver): methods/adjust.py.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from ..config import check_ranges
from ..errors import UserError
from ..models.transformer import Block, ModelConfig, _rotary
from ..sampling.base import SampleResult
from .adjust_decode import joint_decode, masked_log_probs

ADJUST_MODES = ("adjust", "marginal")


@dataclass
class SamplerConfig:
    embed_size: int = 0
    hidden_size: int = 0
    dim: int = 0  # block width
    n_heads: int = 4
    mlp_ratio: float = 4.0
    rope_base: float = 10000.0
    init_gain: float = 0.0  # output norm gain at init: 0 = starts as the marginal baseline

    def validate(self) -> None:
        if min(self.embed_size, self.hidden_size, self.dim) < 1:
            raise UserError(f"ADJUST sampler sizes embed={self.embed_size} hidden={self.hidden_size} dim={self.dim}: "
                            "all must be >= 1")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise UserError(f"adjust.dim={self.dim} with adjust.n_heads={self.n_heads}: the head size must be an "
                            "even integer; pick dim divisible by 2 * n_heads")


class SamplerLayer(nn.Module):
    def __init__(self, cfg: SamplerConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.norm_e = nn.LayerNorm(cfg.embed_size)
        self.norm_h = nn.LayerNorm(cfg.hidden_size)
        self.down = nn.Linear(cfg.embed_size + cfg.hidden_size, cfg.dim, bias=False)
        self.block = Block(ModelConfig(vocab_size=2, dim=cfg.dim, n_layers=1, n_heads=cfg.n_heads,
                                       mlp_ratio=cfg.mlp_ratio, rope_base=cfg.rope_base))
        self.out_norm = nn.LayerNorm(cfg.dim)
        self.up = nn.Linear(cfg.dim, cfg.hidden_size, bias=False) if cfg.dim != cfg.hidden_size else None
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.01 if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        nn.init.constant_(self.out_norm.weight, cfg.init_gain)  # 0: starts as the identity h^(j) = h^(j-1)

    def forward(self, emb: torch.Tensor, h_prev: torch.Tensor, attn="bidirectional") -> torch.Tensor:
        # emb: [B, L, E] frozen token embeddings of x^(j); h_prev: [B, L, H] -> h^(j): [B, L, H]
        z = self.down(torch.cat([self.norm_e(emb), self.norm_h(h_prev)], dim=-1))
        positions = torch.arange(z.shape[1], device=z.device)
        cos, sin = _rotary(positions, self.cfg.dim // self.cfg.n_heads, self.cfg.rope_base, z.dtype)
        z = self.out_norm(self.block(z, cos, sin, attn, None, 0))
        return h_prev + (self.up(z) if self.up is not None else z)


@dataclass
class AdjustConfig:
    """Recipe section `adjust:` (see `paradistill distill adjust --help`)."""
    trajectories: int = 512
    traj_batch_size: int = 64
    shard_size: int = 256
    traj_seed: int = 0
    traj_temperature: float = 1.0
    max_unroll: int = 7
    unroll_p: float = 0.3  # k ~ geometric(p) truncated at max_unroll
    loss_at: str = "all"  # "all": KL after every sampler pass; "last": only after the k-th
    shared_k: bool = True  # one k per batch (no sampler passes wasted on rows that stopped unrolling)
    cache_hidden: bool = True  # record full-pass hidden states with the trajectories: training needs no full pass
    cache_max_gb: float = 8.0  # refuse a hidden-state cache larger than this (float16, trajectories x L x L x H)
    init_from_base: bool = True  # sampler block = the base's first block, down-projection = [I ; 0] (same width)
    dim: int = 0  # sampler block width (0: the base's hidden size)
    n_heads: int = 0  # 0: the base's head count
    mlp_ratio: float = 4.0
    init_gain: float = 0.0  # sampler output-norm gain at init (0: an untrained sampler is the marginal baseline)
    steps: int = 800
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 20
    ema: float = 0.99
    eval_batches: int = 4
    val_fraction: float = 0.05
    tokens_per_pass: int = 4  # default K when sampling this checkpoint

    def validate(self) -> None:
        if self.max_unroll < 1:
            raise UserError(f"adjust.max_unroll={self.max_unroll}: must be >= 1")
        if not 0 < self.unroll_p <= 1:
            raise UserError(f"adjust.unroll_p={self.unroll_p}: must be in (0, 1]")
        if self.loss_at not in ("all", "last"):
            raise UserError(f"adjust.loss_at={self.loss_at!r}: choose 'all' or 'last'")
        if self.trajectories < 2:
            raise UserError(f"adjust.trajectories={self.trajectories}: record at least 2 (train + validation)")
        if self.tokens_per_pass < 1:
            raise UserError(f"adjust.tokens_per_pass={self.tokens_per_pass}: must be >= 1")
        check_ranges(self, "adjust", {"steps": (1, None), "batch_size": (1, None), "traj_batch_size": (1, None),
                                      "shard_size": (1, None), "eval_batches": (1, None), "warmup_steps": (0, None),
                                      "dim": (0, None), "n_heads": (0, None), "mlp_ratio": (1e-9, None),
                                      "lr": (1e-300, None), "ema": (0, "<1"), "val_fraction": (0, "<1"),
                                      "traj_temperature": (1e-9, None), "cache_max_gb": (0, None),
                                      "init_gain": (0, None), "traj_seed": (0, None)})


def unroll_windows(order: torch.Tensor, generator: torch.Generator, max_unroll: int, p: float, shared: bool = False,
                   block_size: int | None = None):
    """order: [B, L] (-1 pad) -> (rank [B, L]: step at which a position is revealed, -1 for fixed positions;
    start s [B] uniform over recorded states; k [B] in [1, max_unroll] ~ truncated geometric(p), one draw for the
    batch when `shared`, at most the tokens left (in the block of the next pick, for block bases))."""
    batch, length = order.shape
    n_gen = (order >= 0).sum(1).cpu()
    rank = torch.full_like(order, -1)
    rows, steps = torch.nonzero(order >= 0, as_tuple=True)
    rank[rows, order[rows, steps].long()] = steps
    u, v = torch.rand(2, batch, generator=generator, dtype=torch.float64)
    if shared:
        v = v[:1].expand(batch)
    s = (u * n_gen).floor().long().clamp_max((n_gen - 1).clamp_min(0))
    k = 1 + (torch.log1p(-v) / math.log1p(-p)).floor().long() if p < 1 else torch.ones(batch, dtype=torch.long)
    left = n_gen - s
    if block_size:  # windows stay inside the block being decoded (a new block starts with a full pass)
        blocks = torch.where(order >= 0, order // block_size, torch.full_like(order, -1)).cpu()
        current = blocks.gather(1, s[:, None])
        left = ((blocks == current) & (torch.arange(length)[None] >= s[:, None])).sum(1)
    k = torch.minimum(k.clamp(1, max_unroll), left).clamp_min(0)
    return rank, s.to(order.device), k.to(order.device)


def unrolled_state(tokens, rank, revealed, mask_id):
    """tokens, rank: [B, L]; revealed: [B] number of recorded picks made -> x: [B, L]."""
    return torch.where(rank < revealed[:, None], tokens, torch.full_like(tokens, mask_id))


def forward_kl(target_lp: torch.Tensor, lp: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per position from log-probs [B, L, V] -> [B, L]."""
    return (target_lp.exp() * (target_lp - lp)).sum(-1)


class AdjustObjective:
    """Train-loop objective: `model` is the SamplerLayer; the frozen base lives in the adapter. Batches are
    trajectory rows [B, 2L + 1]: final tokens, the unmasking order, the row index. With a `store` (hidden-state
    cache recorded with the trajectories) h^(0) and the targets head(h_full(x^(j))) are read, not recomputed."""
    kind = "adjust"

    def __init__(self, adapter, cfg: AdjustConfig, store=None):
        cfg.validate()
        self.adapter, self.cfg, self.store = adapter, cfg, store

    def trainable_parameters(self, model):
        return model.parameters()

    def to(self, device):
        self.adapter.to(device)

    def _full(self, x, index, revealed):
        """Full-pass (hidden [B, L, H], log-probs [B, L, V]) at the recorded state with `revealed` picks."""
        if self.store is None:
            h, logits = self.adapter.hidden_and_logits(x)
        else:
            h = self.store.get(index, revealed).to(x.device)
            with torch.no_grad():
                logits = self.adapter.head(h)
        return h, masked_log_probs(logits, self.adapter.mask_id)

    def _terms(self, sampler, batch, generator):
        length = (batch.shape[1] - 1) // 2
        tokens, order, index = batch[:, :length], batch[:, length:2 * length], batch[:, -1]
        ad, mask_id = self.adapter, self.adapter.mask_id
        block = getattr(ad, "block_size", None)
        rank, s, k = unroll_windows(order, generator, self.cfg.max_unroll, self.cfg.unroll_p, self.cfg.shared_k,
                                    block)
        in_block = torch.ones_like(tokens, dtype=torch.bool)
        if block:  # only the block being decoded is scored
            rows = torch.arange(len(s), device=s.device)
            nxt = order[rows, s.clamp_max(length - 1)].clamp_min(0)
            in_block = (torch.arange(length, device=s.device)[None] // block) == (nxt // block)[:, None]
        h, marginal = self._full(unrolled_state(tokens, rank, s, mask_id), index, s)
        attn = ad.attention(length)
        kl_sum = torch.zeros((), device=batch.device)
        marg_sum, count = 0.0, 0
        for j in range(1, int(k.max()) + 1 if len(k) else 1):
            revealed = s + torch.clamp(k, max=j)
            x = unrolled_state(tokens, rank, revealed, mask_id)
            h = sampler(ad.embed_tokens(x), h, attn)
            scored = (x == mask_id) & (j <= k)[:, None] & in_block
            if self.cfg.loss_at == "last":
                scored &= (j == k)[:, None]
            if not scored.any():
                continue
            with torch.no_grad():
                target = self._full(x, index, revealed)[1]
                marg_sum += float(forward_kl(target, marginal)[scored].sum())
            kl_sum = kl_sum + forward_kl(target, masked_log_probs(ad.head(h), mask_id))[scored].sum()
            count += int(scored.sum())
        return kl_sum, count, marg_sum

    def loss(self, model, batch, generator):
        kl_sum, count, marg_sum = self._terms(model, batch, generator)
        if count == 0:  # nothing left to predict in any window: a zero loss that still reaches the parameters
            kl_sum = sum(p.sum() for p in model.parameters()) * 0.0
        loss = kl_sum / max(count, 1)
        value, kl_marg = float(loss.detach()), marg_sum / max(count, 1)
        return loss, {"loss": value, "kl_marginal": kl_marg,
                      "kl_closed": 1.0 - value / kl_marg if kl_marg > 0 else 0.0}

    @torch.no_grad()
    def eval_terms(self, model, batch, generator=None):
        kl_sum, count, _ = self._terms(model, batch, generator or torch.Generator().manual_seed(0))
        return kl_sum, torch.tensor(count)


def sampler_config_for(adapter, cfg: AdjustConfig, base_heads: int) -> SamplerConfig:
    return SamplerConfig(embed_size=adapter.embed_size, hidden_size=adapter.hidden_size,
                         dim=cfg.dim or adapter.hidden_size, n_heads=cfg.n_heads or base_heads,
                         mlp_ratio=cfg.mlp_ratio, rope_base=getattr(adapter, "rope_base", 10000.0),
                         init_gain=cfg.init_gain)


def init_from_base(sampler: SamplerLayer, adapter) -> bool:
    """Start the sampler block from the base's first block, reading the new token embeddings (down = [I ; 0]):
    its attention already routes neighbouring tokens, so the first updates are informative. Only when the widths
    match; a sampler with a smaller MLP (a cheaper sampler pass) keeps the base MLP's hidden units with the largest
    ||w_in|| * ||w_out||. Returns whether it applied."""
    first = getattr(getattr(adapter, "model", None), "blocks", [None])[0]
    cfg = sampler.cfg
    if first is None or cfg.dim != cfg.hidden_size or cfg.dim != cfg.embed_size:
        return False
    state = dict(first.state_dict())
    mine = sampler.block.state_dict()
    if set(state) != set(mine):
        return False
    hidden = mine["mlp.0.weight"].shape[0]
    if hidden < state["mlp.0.weight"].shape[0]:
        w_in, w_out = state["mlp.0.weight"], state["mlp.2.weight"]
        keep = (w_in.norm(dim=1) * w_out.norm(dim=0)).topk(hidden).indices.sort().values
        state["mlp.0.weight"], state["mlp.0.bias"] = w_in[keep], state["mlp.0.bias"][keep]
        state["mlp.2.weight"] = w_out[:, keep]
    if any(state[k].shape != mine[k].shape for k in mine):
        return False
    sampler.block.load_state_dict(state)
    with torch.no_grad():
        sampler.down.weight.zero_()
        sampler.down.weight[:, : cfg.embed_size] = torch.eye(cfg.dim)
    return True


class AdjustModel(nn.Module):
    """A loaded ADJUST checkpoint: the frozen base and its sampler layer (`cfg` is the base's ModelConfig, so
    generic code reading vocab size or width keeps working; the sampler's is `sampler.cfg`)."""

    def __init__(self, base: nn.Module, sampler: SamplerLayer):
        super().__init__()
        self.base, self.sampler, self.cfg = base, sampler, base.cfg


def generate_adjust(adapter, sampler, x, fixed, generator, options, tokens_per_pass: int = 4, mode: str = "adjust",
                    adaptive_threshold: float | None = None,
                    confidence_threshold: float | None = None) -> SampleResult:
    """Sample with K = tokens_per_pass picks per full pass of `adapter`'s frozen base, conditioned by the sampler
    layer `sampler` (mode "adjust") or on the full pass's marginals (mode "marginal"). x, fixed: [B, L]. K fixes
    the number of full passes (ceil(masked / K), or more with an adaptive threshold). Returns a SampleResult whose
    nfe counts full passes and extra['sampler_passes'] the sampler passes. `confidence_threshold` (ADJUST +
    threshold): picks go to the most confident position and continue in a pass while its top probability is >= it."""
    if mode not in ADJUST_MODES:
        raise UserError(f"adjust mode {mode!r}: choose one of {', '.join(ADJUST_MODES)}")
    if tokens_per_pass < 1:
        raise UserError(f"--tokens-per-pass {tokens_per_pass}: must be >= 1 (1 = one token per full pass, the exact "
                        "reference)")
    if adaptive_threshold is not None and not adaptive_threshold >= 0:
        raise UserError(f"adaptive entropy threshold {adaptive_threshold}: must be >= 0 (nats)")
    if confidence_threshold is not None and not 0 <= confidence_threshold <= 1:
        raise UserError(f"--threshold {confidence_threshold}: ADJUST + threshold takes a top probability in [0, 1]")
    start = time.perf_counter()
    tokens, _, nfe, passes = joint_decode(adapter, x, fixed, generator, options, tokens_per_pass,
                                          sampler if mode == "adjust" else None, adaptive_threshold,
                                          confidence=confidence_threshold)
    return SampleResult(tokens, nfe, time.perf_counter() - start,
                        extra={"sampler_passes": passes, "tokens_per_pass": tokens_per_pass, "mode": mode})
