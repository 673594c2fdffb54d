"""Self-Distillation Through Time (SDTT; Deschenaux & Gulcehre, ICLR 2025): halve the sampling steps of a
masked diffusion model, round after round.

Per batch: x_t from the forward process; the frozen teacher takes two ancestral steps of size dt from x_t
(t -> t-dt -> t-2dt, the unmasking rule of sampling/samplers.AncestralSampler, float64 draws). Target at a
position unmasked by the first step: the teacher's distribution at t; at every other position masked in x_t:
the teacher's distribution at t-dt given the first step's tokens. The student makes ONE pass on x_t and
matches the target on every position masked in x_t (reverse KL by default; forward KL, MSE on log-probs, or
total variation on probabilities).

Time sampling: t is drawn in [2 dt, 1] (antithetic, "uniform") or on the student's sampling grid
{2 dt, 4 dt, ..., 1} ("grid"), so the teacher's second step never goes below t = 0 (no clamping).

Rounds: dt = 1 / m with m = from_steps, from_steps/2, ..., 2 * to_steps; each round trains with
train/loop.py into OUT/round_<r>_<m/2>steps/ (own checkpoints, EMA, resumable); its EMA student is the next
round's teacher and student initialisation (optionally with the previous round's Adam state).

Kinds (`Forward`): mdlm; bd3lm (one time per block, each block's two teacher steps conditioned on the clean
blocks before it, as the block sampler sees them); and Gumbel-distilled students gd-mdlm / gd-bd3lm through
`SharedNoise`: one fresh noise draw per row, as at inference, shown to the teacher's passes and the student's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..config import check_ranges
from ..diffusion.bd3lm import bd3_logits, block_attention_mask
from ..diffusion.mdlm import q_sample, subs_log_probs
from ..diffusion.objectives import keep_positions
from ..diffusion.schedules import build_schedule
from ..errors import UserError
from ..kinds import get_kind, require_kind
from ..sampling.categorical import sample_categorical
from .gumbel import NoiseInjected, noise_output, saved_gumbel_config
from .gumbel_noise import draw_seeds, fresh_noise

DIVERGENCES = ("reverse_kl", "forward_kl", "mse", "tv")
PROTOCOLS = ("paradistill", "official")


@dataclass
class SDTTConfig:
    divergence: str = "reverse_kl"  # reverse_kl = KL(student || teacher) | forward_kl | mse (log-probs) | tv
    from_steps: int = 64  # the teacher's sampling steps (dt = 1 / from_steps in round 1)
    to_steps: int = 8  # the last student's sampling steps
    steps_per_round: int = 200
    lr: float = 3e-4
    warmup_steps: int = 20
    ema: float = 0.999  # a fresh EMA per round (0 disables); warm-up min(ema, (1+n)/(10+n)) dominates short rounds
    reset_optimizer: bool = True  # False: each round starts from the previous round's Adam state
    t_sampling: str = "uniform"  # "uniform" in [2 dt, 1] | "grid" on {2 dt, 4 dt, ..., 1}
    antithetic: bool = True
    noise_temperature: float | None = None  # gd-* teachers: temperature of the shared noise (None: checkpoint's)
    # "paradistill": each round's teacher is the previous student's EMA weights, a fresh EMA per round (and a fresh
    # Adam unless reset_optimizer=false). "official": the released SDTT code's protocol: the raw (non-averaged)
    # student becomes the next teacher and student, Adam and the EMA are carried across rounds.
    protocol: str = "paradistill"

    def validate(self) -> None:
        if self.divergence not in DIVERGENCES:
            raise UserError(f"sdtt.divergence={self.divergence!r}: choose one of {', '.join(DIVERGENCES)}")
        for name in ("from_steps", "to_steps", "steps_per_round"):
            if getattr(self, name) < 1:
                raise UserError(f"sdtt.{name}={getattr(self, name)}: must be >= 1")
        ratio = self.from_steps / self.to_steps
        if self.from_steps <= self.to_steps or ratio != 2 ** round(math.log2(ratio)):
            raise UserError(f"--from-steps {self.from_steps} / --to-steps {self.to_steps}: the ratio must be a power "
                            "of two > 1 (each round halves the steps), e.g. --from-steps 64 --to-steps 8")
        if self.protocol not in PROTOCOLS:
            raise UserError(f"sdtt.protocol={self.protocol!r}: choose one of {', '.join(PROTOCOLS)}")
        if self.t_sampling not in ("uniform", "grid"):
            raise UserError(f"sdtt.t_sampling={self.t_sampling!r}: choose 'uniform' or 'grid'")
        if not self.lr > 0:
            raise UserError(f"sdtt.lr={self.lr}: must be > 0")
        check_ranges(self, "sdtt", {"warmup_steps": (0, None), "ema": (0, "<1")})

    def rounds(self) -> list[tuple[int, int]]:
        """[(teacher steps, student steps)] per round: from_steps -> ... -> to_steps, halving."""
        out, m = [], self.from_steps
        while m > self.to_steps:
            out.append((m, m // 2))
            m //= 2
        return out


# ---- shared conditioning (Gumbel-distilled students) ---------------------------------------------------

class NoConditioning:
    """Plain masked diffusion models: nothing extra."""

    def draw(self, x0: torch.Tensor, generator: torch.Generator):
        return None

    def wrap(self, model, cond):
        return model


class SharedNoise:
    """Gumbel-distilled students (gd-mdlm): per batch, one fresh prior noise draw per row exactly as at inference
    (`gumbel.noise_conditioned_denoiser`: per-sample seeds, the checkpoint's noise type, times the noise
    temperature), held fixed over the teacher's two steps and shown to the student's pass too."""

    def __init__(self, method: dict[str, Any], model_cfg, mask_id: int, temperature: float | None = None):
        gm = saved_gumbel_config(method)
        self.noise_type = gm.noise
        self.temperature = float(gm.noise_temperature if temperature is None else temperature)
        self.model_cfg, self.mask_id = model_cfg, mask_id

    def draw(self, x0: torch.Tensor, generator: torch.Generator):
        # x0: [B, L] long -> noise [B, L, V] float32 (or SparseNoise for top-k embeddings); None for noise=none
        if self.noise_type == "none":
            return None
        seeds = draw_seeds(x0.shape[0], generator)
        cfg = self.model_cfg
        return fresh_noise(seeds, x0.shape[1], cfg.vocab_size, self.noise_type, self.temperature,
                           noise_output(cfg), cfg.noise_topk, device=x0.device)

    def wrap(self, model, cond):
        return model if cond is None else NoiseInjected(model, cond, self.mask_id)


def conditioning_for(kind: str, method: dict[str, Any], model_cfg, mask_id: int, cfg: SDTTConfig):
    """The conditioning shared by teacher and student: the student's noise for noise-conditioned kinds."""
    k = require_kind(kind, "SDTT (a masked-diffusion teacher: `paradistill train mdlm`, or `paradistill distill "
                     "gumbel --student mdlm`)", "teacher", family="diffusion")
    if k.noise_conditioned:
        return SharedNoise(method, model_cfg, mask_id, cfg.noise_temperature)
    return NoConditioning()


class Forward:
    """SUBS log-probs of a checkpoint kind: MDLM (one bidirectional pass on x) or BD3-LM (x_t half of one pass on
    `[x ; x0]`: every block sees the clean blocks before it), through the shared conditioning."""

    def __init__(self, mask_id: int, block_size: int | None = None, conditioning=None):
        self.mask_id, self.block_size = mask_id, block_size
        self.conditioning = conditioning or NoConditioning()
        self._masks: dict[tuple[int, str], torch.Tensor] = {}

    def draw(self, x0: torch.Tensor, generator: torch.Generator):
        return self.conditioning.draw(x0, generator)

    def __call__(self, model, x: torch.Tensor, t: torch.Tensor, x0: torch.Tensor | None = None, cond=None):
        """x: [B, L] long; t: [B] (MDLM) or [B, L] (BD3-LM, one time per block) -> [B, L, V] float32."""
        net = self.conditioning.wrap(model, cond)
        if self.block_size is None:
            sigma = t.float() if model.cfg.time_conditioning else None
            logits = net(x, attn="bidirectional", sigma=sigma).logits
        else:
            key = (x.shape[1], str(x.device))
            if key not in self._masks:
                self._masks[key] = block_attention_mask(x.shape[1], self.block_size, x.device)
            logits = bd3_logits(net, x, x0, self.block_size, self._masks[key])
        return subs_log_probs(logits, x, self.mask_id)


def forward_for(kind: str, method: dict[str, Any], model_cfg, mask_id: int, cfg: SDTTConfig) -> Forward:
    conditioning = conditioning_for(kind, method, model_cfg, mask_id, cfg)
    if get_kind(kind).block:
        if model_cfg.time_conditioning:
            raise UserError(f"a {kind} checkpoint with time conditioning: BD3-LM takes one time per block, which "
                            "adaLN cannot; use a checkpoint trained with model.time_conditioning=false")
        return Forward(mask_id, int(method["block_size"]), conditioning)
    return Forward(mask_id, None, conditioning)


# ---- the teacher's two ancestral steps ----------------------------------------------------------------

def ancestral_unmask(x: torch.Tensor, masked: torch.Tensor, log_probs: torch.Tensor, t: torch.Tensor,
                     s: torch.Tensor, schedule, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One ancestral step t -> s exactly as AncestralSampler draws it (uniforms over the full [B, L] shape in
    float64, then float64 Gumbel-max tokens). x, masked: [B, L]; log_probs: [B, L, V]; t, s: [B] or [B, L]
    float64. Returns (new x, unmasked-now [B, L] bool)."""
    alpha_t, _ = schedule(t)
    alpha_s, _ = schedule(s)
    p_unmask = ((alpha_s - alpha_t) / (1.0 - alpha_t)).clamp(0.0, 1.0)  # [B] or [B, L]
    if p_unmask.dim() == 1:
        p_unmask = p_unmask[:, None]
    u = torch.rand(x.shape, generator=generator, dtype=torch.float64).to(x.device)
    unmask = masked & (u < p_unmask.to(u.device))
    if unmask.any():
        x = x.masked_scatter(unmask, sample_categorical(log_probs[unmask], generator))
    return x, unmask


@torch.no_grad()
def teacher_targets(teacher, forward: Forward, xt: torch.Tensor, t: torch.Tensor, dt: float, keep: torch.Tensor,
                    schedule, generator: torch.Generator, x0: torch.Tensor | None = None, cond=None):
    """The SDTT target. xt: [B, L] long; t: [B] (or [B, L] for BD3-LM) float64 >= 2 dt; keep: [B, L] bool (never
    masked); x0: [B, L] clean context (BD3-LM only); cond: the shared conditioning draw.
    Returns (target log-probs [B, L, V] float32, first-step unmask [B, L] bool, x after the first step)."""
    masked = (xt == forward.mask_id) & ~keep
    lp1 = forward(teacher, xt, t, x0, cond)
    return two_step_target(lp1, lambda x_mid: forward(teacher, x_mid, t - dt, x0, cond), xt, masked, t, t - dt,
                           schedule, generator)


def two_step_target(lp1: torch.Tensor, second: Callable, xt: torch.Tensor, masked: torch.Tensor, t: torch.Tensor,
                    t_mid: torch.Tensor, schedule, generator: torch.Generator):
    """One draw of the teacher's two-step target from its first-step log-probs `lp1` [B, L, V] at (xt, t): an
    ancestral step t -> t_mid from lp1, then `second(x_mid)` (the teacher's log-probs there). Positions unmasked by
    the first step keep lp1. Callers averaging over several draws compute lp1 once.
    Returns (target log-probs, first-step unmask [B, L] bool, x_mid)."""
    x_mid, first = ancestral_unmask(xt, masked, lp1, t, t_mid, schedule, generator)
    return torch.where(first[..., None], lp1, second(x_mid)), first, x_mid


# ---- divergences --------------------------------------------------------------------------------------

def divergence(student_lp: torch.Tensor, target_lp: torch.Tensor, kind: str, mask_id: int | None = None):
    """Per-position divergence [...] between student and target log-probs [..., V] (float32).
    reverse_kl = KL(student || target); forward_kl = KL(target || student); mse = mean over the vocabulary
    (MASK column excluded) of squared log-prob differences; tv = 1/2 sum |p - q| on PROBABILITIES."""
    q_lp, p_lp = student_lp.float(), target_lp.float()
    if kind == "reverse_kl":
        q = q_lp.exp()
        return (q * (q_lp - p_lp)).sum(-1)
    if kind == "forward_kl":
        p = p_lp.exp()
        return (p * (p_lp - q_lp)).sum(-1)
    if kind == "mse":
        diff = (q_lp - p_lp) ** 2
        if mask_id is not None:
            diff = diff.index_fill(-1, torch.tensor([mask_id], device=diff.device), 0.0)
            return diff.sum(-1) / (diff.shape[-1] - 1)
        return diff.mean(-1)
    if kind == "tv":
        return 0.5 * (q_lp.exp() - p_lp.exp()).abs().sum(-1)
    raise UserError(f"divergence={kind!r}: choose one of {', '.join(DIVERGENCES)}")


# ---- the objective ------------------------------------------------------------------------------------

class SDTTObjective:
    """loss(model, batch, gen): one SDTT step with a frozen teacher. `kind` is the teacher's kind, so the
    student checkpoint samples exactly like its teacher."""

    def __init__(self, teacher, kind: str, cfg: SDTTConfig, dt: float, mask_id: int, pad_id: int, bos_id: int,
                 keep_bos: bool = True, schedule: str = "loglinear", eps: float = 1e-3,
                 forward: Forward | None = None):
        self.teacher = teacher.eval().requires_grad_(False)
        self.kind, self.cfg, self.dt = kind, cfg, float(dt)
        self.mask_id, self.pad_id, self.bos_id, self.keep_bos = mask_id, pad_id, bos_id, keep_bos
        self.schedule = build_schedule(schedule, eps)
        self.forward = forward or Forward(mask_id)
        if not 0 < 2 * self.dt <= 1:
            raise UserError(f"SDTT step size dt={dt}: two teacher steps must fit in [0, 1] (from_steps >= 2)")

    def trainable_parameters(self, model):
        return model.parameters()

    def to(self, device):
        self.teacher.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"dt": self.dt, "divergence": self.cfg.divergence}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if abs(state["dt"] - self.dt) > 1e-12 or state["divergence"] != self.cfg.divergence:
            raise UserError(f"cannot resume: the run was started with dt={state['dt']}, divergence="
                            f"{state['divergence']}; now dt={self.dt}, divergence={self.cfg.divergence}. Use the "
                            "original --from-steps/--divergence or a new --out")

    def sample_times(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """[n] float64 times with t - 2 dt >= 0: uniform in [2 dt, 1] or on the student's grid (antithetic)."""
        if self.cfg.antithetic:
            u = (torch.rand((), generator=generator, dtype=torch.float64) + torch.arange(n, dtype=torch.float64) / n) % 1.0
        else:
            u = torch.rand(n, generator=generator, dtype=torch.float64)
        lo = 2 * self.dt
        if self.cfg.t_sampling == "grid":
            k = (u * round(1 / lo)).floor() + 1  # {1, ..., m / 2}
            return (k * lo).clamp(max=1.0)
        return lo + (1.0 - lo) * u

    def times(self, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        """[B] times (MDLM), or [B, L] with one time per block (BD3-LM; antithetic over batch x blocks)."""
        bsz, length = shape
        block = self.forward.block_size
        if block is None:
            return self.sample_times(bsz, generator)
        t = self.sample_times(bsz * (length // block), generator)
        return t.view(bsz, -1).repeat_interleave(block, dim=1)

    def noised(self, batch, generator):
        """batch: [B, L] long -> (keep [B, L] bool, t, x_t [B, L], the shared conditioning draw)."""
        keep = keep_positions(batch, self.pad_id, self.bos_id, self.keep_bos)
        t = self.times(batch.shape, generator).to(batch.device)
        alpha, _ = self.schedule(t)
        xt = q_sample(batch, alpha.float(), self.mask_id, generator, keep=keep)
        return keep, t, xt, self.forward.draw(batch, generator)

    def _terms(self, model, batch, generator):
        # batch: [B, L] long -> per-position divergence [B, L] and the positions it counts [B, L] bool
        keep, t, xt, cond = self.noised(batch, generator)
        target, first, _ = teacher_targets(self.teacher, self.forward, xt, t, self.dt, keep, self.schedule,
                                           generator, batch, cond)
        student = self.forward(model, xt, t, batch, cond)
        counted = (xt == self.mask_id) & ~keep
        terms = divergence(student, target, self.cfg.divergence, self.mask_id)
        return torch.where(counted, terms, torch.zeros_like(terms)), counted, first

    def eval_terms(self, model, batch, generator):
        terms, counted, _ = self._terms(model, batch, generator)
        return terms.sum(), counted.sum()

    def loss(self, model, batch, generator):
        terms, counted, first = self._terms(model, batch, generator)
        n = counted.sum().clamp_min(1)
        loss = terms.sum() / n
        return loss, {"loss": loss.item(), "first_step_frac": float(first.sum() / n)}


# ---- rounds -------------------------------------------------------------------------------------------
