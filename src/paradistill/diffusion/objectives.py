"""Training objectives of the base models: autoregressive and MDLM. (BD3-LM: bd3lm.py; distillation: distill/.)

An objective has `loss(model, batch, generator) -> (loss, metrics)`, `eval_terms(model, batch, generator)
-> (summed NLL or NELBO, token count)`, `trainable_parameters(model)` and a `kind` stored in checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import check_ranges
from ..errors import UserError
from .mdlm import nelbo_terms, q_sample, sample_times
from .schedules import SCHEDULES, build_schedule


@dataclass
class DiffusionConfig:
    schedule: str = "loglinear"
    eps: float = 1e-3
    antithetic: bool = True
    keep_bos: bool = True  # position 0 holds BOS in aligned data: a prompt, never masked nor scored
    t_min: float | None = None  # clipped training schedule (BD3-LM); evaluation always uses [eps, 1]
    t_max: float | None = None

    def validate(self) -> None:
        if self.schedule not in SCHEDULES:
            raise UserError(f"diffusion.schedule={self.schedule!r}: choose one of {', '.join(sorted(SCHEDULES))}")
        check_ranges(self, "diffusion", {"eps": (0, "<1"), "t_min": (0, 1), "t_max": (0, 1)})
        if self.t_min is not None and self.t_max is not None and self.t_min >= self.t_max:
            raise UserError(f"diffusion.t_min={self.t_min}, diffusion.t_max={self.t_max}: need t_min < t_max")


def keep_positions(x0: torch.Tensor, pad_id: int, bos_id: int, keep_bos: bool) -> torch.Tensor:
    """[B, L] bool: positions that are never masked nor scored (padding; the leading BOS)."""
    keep = x0 == pad_id
    if keep_bos:
        keep[:, 0] |= x0[:, 0] == bos_id
    return keep


class ARObjective:
    kind = "ar"
    attn = "causal"

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def trainable_parameters(self, model):
        return model.parameters()

    def eval_terms(self, model, batch, generator=None):
        # batch: [B, L] long; next-token cross entropy, padding targets excluded
        logits = model(batch[:, :-1], attn="causal").logits
        targets = batch[:, 1:]
        nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        counted = targets != self.pad_id
        return (nll * counted).sum(), counted.sum()

    def loss(self, model, batch, generator):
        total, count = self.eval_terms(model, batch)
        loss = total / count.clamp_min(1)
        return loss, {"loss": loss.item()}


class MDLMObjective:
    kind = "mdlm"

    def __init__(self, cfg: DiffusionConfig, mask_id: int, pad_id: int, bos_id: int):
        self.cfg = cfg
        self.schedule = build_schedule(cfg.schedule, cfg.eps)
        self.mask_id, self.pad_id, self.bos_id = mask_id, pad_id, bos_id

    def trainable_parameters(self, model):
        return model.parameters()

    def forward_logits(self, model, xt, t, x0, generator):
        """Hook for noise-conditioned students (Gumbel Distillation overrides it)."""
        sigma = t if model.cfg.time_conditioning else None
        return model(xt, attn="bidirectional", sigma=sigma).logits

    def _terms(self, model, batch, generator, t_min, t_max):
        keep = keep_positions(batch, self.pad_id, self.bos_id, self.cfg.keep_bos)
        t = sample_times(batch.shape[0], generator, self.cfg.eps, self.cfg.antithetic, t_min, t_max,
                         device=batch.device)
        alpha, _ = self.schedule(t)
        xt = q_sample(batch, alpha, self.mask_id, generator, keep=keep)
        logits = self.forward_logits(model, xt, t, batch, generator)
        terms = nelbo_terms(logits, batch, xt, t, self.schedule, self.mask_id)
        return terms, ~keep

    def eval_terms(self, model, batch, generator):
        terms, counted = self._terms(model, batch, generator, None, None)
        return (terms * counted).sum(), counted.sum()

    def loss(self, model, batch, generator):
        terms, counted = self._terms(model, batch, generator, self.cfg.t_min, self.cfg.t_max)
        loss = (terms * counted).sum() / counted.sum().clamp_min(1)
        return loss, {"loss": loss.item()}
