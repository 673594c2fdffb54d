"""Gumbel Distillation (GD; Zhang, Hu, Liu, Liu, ICLR 2026): a masked-diffusion student (MDLM or BD3-LM)
conditioned on the Gumbel noise that makes an AR teacher produce the training text (METHODS.md §3).

- Online (default): one teacher pass per real-data batch; `gumbel_noise.extract_posterior` gives, per position,
  a Gumbel vector reproducing the observed token under Gumbel-max (chunked, from per-sample seeds).
- Offline: teacher samples drawn by Gumbel-max from stored per-sample seeds; the noise is regenerated from the
  seed during training (the seed travels as an extra last column of the token rows).
- The noise enters the student through `model.noise_embed` at masked positions ("replace" or "add"): dense
  `W softmax(xi)`, or its top-k entries ("topk"; "tied" to the token embedding), or the raw centred noise
  ("linear", not in the paper). Ablations: noise types gaussian / uniform (the same noise mapped through the
  CDFs, so it carries the same information), independent (fresh N(0, 1) noise drawn apart from the text: the
  uninformative control) and none.
- Optional logit skip (`gumbel.logit_skip`, not in the paper): the noise is also added to the logits through a
  learned gate, mirroring the teacher's `argmax(l + xi)`; at this scale the input embedding alone barely uses it.
- The GD objective wraps the base objective (MDLMObjective or BD3Objective) through its `forward_logits` hook:
  the loss is the base NELBO, conditioned on the noise. Checkpoint kinds "gd-mdlm" / "gd-bd3lm".
- Inference: fresh prior noise times a temperature per sample, fixed over all steps, any sampler.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import from_dict
from ..errors import UserError
from ..kinds import require_kind
from ..models.noise_embed import DENSE_INPUT_MODES, EMBED_MODES, SparseNoise
from ..sampling.approx_cache import BlockCachedDenoiser
from ..sampling.bd3lm import denoiser_for
from ..seeding import derive_seed
from .gumbel_noise import (
    NOISE_TYPES,
    check_noise_temperature,
    draw_seeds,
    extract_posterior,
    fresh_noise,
    gumbel_from_keys,
    position_keys,
)

STREAM_OFFLINE = 2
STREAM_INDEPENDENT = 3  # noise.type=independent: drawn apart from the text, never the posterior of it
STUDENTS = ("mdlm", "bd3lm")
OFFLINE_FILE = "offline_teacher_samples.npz"


@dataclass
class GumbelConfig:
    noise: str = "gumbel"  # gumbel | gaussian | uniform | independent | none (ablations; see gumbel_noise.NOISE_TYPES)
    embed: str = "dense"  # dense | topk | tied (how softmax(noise) becomes an input embedding) | linear (raw noise)
    topk: int = 32  # entries of softmax(noise) kept by topk / tied
    extra_mode: str = "replace"  # replace the MASK embedding at masked positions, or add to it
    noise_temperature: float = 0.85  # default sampling temperature of the noise (upstream: 0.85)
    extraction: str = "online"  # online (posterior on real data) | offline (teacher samples from seeds)
    offline_samples: int = 0  # offline: teacher samples to draw (0: as many as training rows)
    offline_val_samples: int = 256
    chunk: int = 0  # positions per extraction chunk (0: automatic, ~32 MiB of float64 per chunk)
    zero_init: bool = True  # extra_mode=add: the noise projection starts at 0, so the student starts as an MDLM
    logit_skip: bool = False  # also add gate(h_i) * xi_i to the student's logits (Gumbel-max structure; see below)

    def validate(self) -> None:
        if self.noise not in NOISE_TYPES:
            raise UserError(f"gumbel.noise={self.noise!r}: choose one of {', '.join(NOISE_TYPES)}")
        if self.embed not in EMBED_MODES:
            raise UserError(f"gumbel.embed={self.embed!r}: choose one of {', '.join(EMBED_MODES)}")
        if self.extra_mode not in ("replace", "add"):
            raise UserError(f"gumbel.extra_mode={self.extra_mode!r}: choose replace or add")
        if self.extraction not in ("online", "offline"):
            raise UserError(f"gumbel.extraction={self.extraction!r}: choose online or offline")
        if self.topk < 1:
            raise UserError(f"gumbel.topk={self.topk}: must be >= 1")
        if self.chunk < 0 or self.offline_samples < 0 or self.offline_val_samples < 1:
            raise UserError("gumbel.chunk / gumbel.offline_samples must be >= 0 and offline_val_samples >= 1")
        check_noise_temperature(self.noise_temperature)
        if self.logit_skip and self.noise == "none":
            raise UserError("gumbel.logit_skip=true needs noise: set gumbel.noise to gumbel, gaussian or uniform")


def saved_gumbel_config(method: dict) -> GumbelConfig:
    """A checkpoint's Gumbel settings, read back through the same dataclass (its defaults are the only ones)."""
    return from_dict(GumbelConfig, dict(method.get("gumbel", {})), where="checkpoint config.json: method.gumbel")


def noise_output(model_cfg) -> str:
    """The noise format the student's embedding takes: full [B, L, V] for dense / linear, top-k for topk / tied."""
    return "dense" if model_cfg.noise_embed in DENSE_INPUT_MODES else "topk"


def _take(noise, positions: torch.Tensor):
    """The noise of `positions` ([P] or [B, P] long) out of [B, L, V] / SparseNoise."""
    if positions.dim() == 2:
        rows = torch.arange(positions.shape[0], device=positions.device)[:, None]
        index = (rows, positions)
    else:
        index = (slice(None), positions)
    if isinstance(noise, SparseNoise):
        return SparseNoise(noise.indices[index], noise.log_weights[index])
    return noise[index]


class NoiseInjected:
    """A backbone seen through fixed per-position noise: every call embeds the noise of the positions it
    processes and injects it where the input is MASK. Works for full sequences, BD3-LM's `[x_t ; x0]` (only
    x_t holds masks) and KV-cached blocks alike. Attribute access falls through to the wrapped model."""

    def __init__(self, model, noise, mask_id: int):
        self._model, self._noise, self._mask_id = model, noise, mask_id

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, idx: torch.Tensor, *, positions=None, cache=None, **kw):
        # idx: [B, L'] long
        if kw.pop("extra", None) is not None:
            raise UserError("a noise-conditioned student takes its extra input from its noise; do not pass extra")
        kw.pop("extra_mask", None)
        pos = positions
        if pos is None:
            start = cache.length if cache is not None else 0
            pos = torch.arange(start, start + idx.shape[1], device=idx.device)
        noise = _take(self._noise, pos.to(idx.device))
        return self._model(idx, positions=positions, cache=cache, noise=noise, extra_mask=idx == self._mask_id,
                           **kw)


class GumbelObjective:
    """The base objective's NELBO with the student conditioned on the teacher's posterior (or offline) noise."""

    def __init__(self, base, teacher, cfg: GumbelConfig, mask_id: int):
        cfg.validate()
        self.base, self.teacher, self.cfg, self.mask_id = base, teacher, cfg, mask_id
        self.kind = f"gd-{base.kind}"
        self._base_forward = base.forward_logits
        base.forward_logits = self._forward_logits  # the hook: the base objective calls back into GD
        self._seeds: torch.Tensor | None = None

    def trainable_parameters(self, model):
        return model.parameters()

    def to(self, device):
        if self.teacher is not None:
            self.teacher.to(device)
        return self

    def _prepare(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """batch: [B, L] (offline: [B, L + 1], last column the noise seed) -> x0 [B, L]; sets the seeds.
        Online seeds come from their own generator so that t and the masks match the base objective's."""
        if self.cfg.extraction == "offline":
            self._seeds = batch[:, -1].clone()
            return batch[:, :-1]
        g = torch.Generator().manual_seed(derive_seed(generator.initial_seed(), "gumbel-online"))
        self._seeds = draw_seeds(batch.shape[0], g).to(batch.device)
        return batch

    def loss(self, model, batch, generator):
        return self.base.loss(model, self._prepare(batch, generator), generator)

    def eval_terms(self, model, batch, generator):
        return self.base.eval_terms(model, self._prepare(batch, generator), generator)

    @torch.no_grad()
    def noise(self, x0: torch.Tensor, seeds: torch.Tensor, output: str, vocab: int):
        """x0: [B, L] long, seeds: [B] -> the training noise (dense [B, L, V] float32 or SparseNoise)."""
        cfg = self.cfg
        if cfg.noise == "independent":  # the uninformative control: fresh N(0, 1) noise that says nothing of x0
            return fresh_noise(seeds, x0.shape[1], vocab, cfg.noise, 1.0, output, cfg.topk, cfg.chunk or None,
                               device=x0.device, stream=STREAM_INDEPENDENT)
        if cfg.extraction == "offline":
            return fresh_noise(seeds, x0.shape[1], vocab, cfg.noise, 1.0, output, cfg.topk, cfg.chunk or None,
                               device=x0.device, stream=STREAM_OFFLINE)
        slices = self.teacher.log_prob_slices(x0)
        return extract_posterior(slices, x0, seeds.to(x0.device), cfg.noise, output, cfg.topk, cfg.chunk or None)

    def _forward_logits(self, model, xt, t, x0, generator):
        if self.cfg.noise == "none":
            return self._base_forward(model, xt, t, x0, generator)
        noise = self.noise(x0, self._seeds, noise_output(model.cfg), model.cfg.vocab_size)
        return self._base_forward(NoiseInjected(model, noise, self.mask_id), xt, t, x0, generator)


# ------------------------------------------------------------------------------------------------ offline data
@torch.no_grad()
def sample_teacher_with_seeds(teacher, seeds: torch.Tensor, length: int, bos_id: int, vocab: int,
                              batch_size: int = 256, progress: bool = True) -> torch.Tensor:
    """Teacher samples by float64 Gumbel-max with the counter noise of each seed: [N, length] long, BOS first.
    The noise of row n, position i is `fresh_noise(seeds, ..., stream=STREAM_OFFLINE)[n, i]`."""
    out = torch.full((len(seeds), length), bos_id, dtype=torch.long)
    starts = range(0, len(seeds), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="offline teacher samples", leave=False)
    for s in starts:
        x = out[s:s + batch_size].to(teacher.device)
        keys = position_keys(seeds[s:s + batch_size].long(), torch.arange(length), STREAM_OFFLINE)
        for i in range(1, length):
            logp = teacher.next_token_log_probs(x[:, :i])[:, -1].double().cpu()  # [b, V_teacher]
            g = gumbel_from_keys(keys[:, i], vocab)[:, : logp.shape[-1]]
            x[:, i] = (logp + g).argmax(-1).to(x.device)
        out[s:s + batch_size] = x.cpu()
    return out


def offline_rows(teacher, run_dir: Path, n_train: int, n_val: int, length: int, tokenizer, seed: int,
                 progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """[N, L + 1] int64 rows (tokens, then the seed), stored in RUN/offline_teacher_samples.npz and reused."""
    path = Path(run_dir) / OFFLINE_FILE
    if path.is_file():
        data = np.load(path)
        if data["train"].shape == (n_train, length + 1) and data["val"].shape == (n_val, length + 1):
            return data["train"], data["val"]
    gen = torch.Generator().manual_seed(derive_seed(seed, "gumbel-offline"))
    seeds = draw_seeds(n_train + n_val, gen)
    tokens = sample_teacher_with_seeds(teacher, seeds, length, tokenizer.bos_id, tokenizer.vocab_size,
                                       progress=progress)
    rows = torch.cat([tokens, seeds[:, None]], 1).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, train=rows[:n_train], val=rows[n_train:])
    return rows[:n_train], rows[n_train:]


# ---------------------------------------------------------------------------------------------------- sampling
def noise_conditioned_denoiser(loaded, batch_size: int, length: int, generator: torch.Generator,
                               noise_temperature: float | None = None, kv_cache: bool = True,
                               block_cache: str | None = None, cache_refresh: int | None = None):
    """The denoiser of a noise-conditioned (gd-*) checkpoint: fresh noise (times the noise temperature, default the
    checkpoint's) for each of the `batch_size` samples, fixed for every step of the sampler. `block_cache`
    (full-attention students): the approximate prefix / dual block cache; the noise is taken at the explicit
    positions of each pass."""
    kind = require_kind(loaded.kind, "noise-conditioned sampling", f"checkpoint '{loaded.path}'", noise_conditioned=True)
    gm = saved_gumbel_config(loaded.method)
    temperature = gm.noise_temperature if noise_temperature is None else noise_temperature
    check_noise_temperature(temperature)
    model, mask_id = loaded.model, loaded.tokenizer.mask_id
    wrapped = model
    if gm.noise != "none":
        device = next(model.parameters()).device
        seeds = draw_seeds(batch_size, generator)
        noise = fresh_noise(seeds, length, model.cfg.vocab_size, gm.noise, float(temperature),
                            noise_output(model.cfg), model.cfg.noise_topk, device=device)
        wrapped = NoiseInjected(model, noise, mask_id)
    if block_cache is not None and not kind.block:
        return BlockCachedDenoiser(wrapped, mask_id, block_cache, cache_refresh)
    block = loaded.record.block_size if kind.block else None
    return denoiser_for(wrapped, mask_id, block, use_cache=kv_cache, batch_size=batch_size, length=length)
