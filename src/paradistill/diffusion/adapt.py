"""AR -> masked-diffusion adaptation (the recipe behind DiffuGPT / DiffuLLaMA and Dream).

A causal LM's weights start an MDLM or BD3-LM. Two choices make the start closer to what the AR already knows:

- attention annealing: the training attention starts exactly causal and opens towards the diffusion model's
  mask (bidirectional for MDLM, the two-stream block mask for BD3-LM) over `anneal_steps` optimizer steps.
  Every (query, key) pair the causal mask forbids gets a fixed random priority p in [0, 1) (seeded); at step s
  the pair may attend iff p < s / anneal_steps. So step 0 is exactly causal, steps >= anneal_steps are exactly
  the target mask, and the set of visible pairs only grows in between. Validation always uses the target mask
  (the model as it will be sampled).
- the output convention: `shift=True` keeps the AR's next-token head (output i predicts token i+1, as Dream);
  the backbone realigns its outputs (models.transformer, `ModelConfig.output_shift`) so that every consumer
  sees output i as the prediction of token i. Position 0 has no predecessor; it must be a prompt (BOS, kept).
  `shift=False` reads output i as token i; `reinit_head=True` then re-draws the output head (untied heads only).

The weight copy (`copy_ar_weights`) takes a loaded AR model object, so converters of other checkpoint formats
(HF GPT-2 ...) plug in by producing a paradistill backbone (see adapt_init.py at the API layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UserError
from .bd3lm import BD3Objective, block_attention_mask, two_stream_positions
from .objectives import MDLMObjective


@dataclass
class AdaptConfig:
    anneal_steps: int = 0  # optimizer steps from causal to the target mask (0: the target mask from step 0)
    shift: bool = False  # keep the next-token head: output i predicts token i+1, realigned (Dream)
    reinit_head: bool = False  # unshifted only: re-draw the output head (needs model.tie_weights=false)
    seed: int = 0  # seed of the annealing priorities

    def validate(self) -> None:
        if not isinstance(self.anneal_steps, int) or self.anneal_steps < 0:
            raise UserError(f"adapt.anneal_steps={self.anneal_steps!r}: must be an integer >= 0 (0 = no annealing)")
        if self.shift and self.reinit_head:
            raise UserError("adapt.shift=true keeps the AR's next-token head: drop adapt.reinit_head (or set "
                            "adapt.shift=false)")


def anneal_fraction(step: int, anneal_steps: int) -> float:
    """Share of the causally forbidden pairs opened at optimizer step `step` (0 at step 0, 1 from anneal_steps)."""
    if anneal_steps <= 0:
        return 1.0
    return min(1.0, max(0.0, step / anneal_steps))


def pair_priorities(n_q: int, n_k: int, seed: int) -> torch.Tensor:
    """[n_q, n_k] float64 in [0, 1): the fixed opening order of the (query, key) pairs."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.rand((n_q, n_k), generator=g, dtype=torch.float64)


def annealed_mask(target: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor, frac: float,
                  priorities: torch.Tensor) -> torch.Tensor:
    """[Lq, Lk] bool (True = may attend): `target` restricted to causal pairs (key position <= query position)
    plus the pairs whose priority is below `frac`. frac = 0 -> target & causal; frac >= 1 -> target."""
    causal = k_pos[None, :] <= q_pos[:, None]
    return target & (causal | (priorities < frac))


class _Annealing:
    """Step-dependent training mask; the loop tells the objective its step (`set_step`)."""

    def _init_annealing(self, cfg: AdaptConfig) -> None:
        cfg.validate()
        self.adapt = cfg
        self.step = 0
        self._training = False
        self._prio: dict[tuple[int, int], torch.Tensor] = {}

    def set_step(self, step: int) -> None:
        self.step = int(step)

    def fraction(self) -> float:
        return anneal_fraction(self.step, self.adapt.anneal_steps) if self._training else 1.0

    def _mask(self, target: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        key = tuple(target.shape)
        if key not in self._prio:
            self._prio[key] = pair_priorities(*key, seed=self.adapt.seed)
        return annealed_mask(target, q_pos, k_pos, self.fraction(), self._prio[key].to(target.device))

    def loss(self, model, batch, generator):
        self._training = True
        try:
            return super().loss(model, batch, generator)  # type: ignore[misc]
        finally:
            self._training = False


class AdaptedMDLMObjective(_Annealing, MDLMObjective):
    """MDLM whose training attention anneals from causal to bidirectional."""

    def __init__(self, cfg, mask_id, pad_id, bos_id, adapt: AdaptConfig):
        MDLMObjective.__init__(self, cfg, mask_id, pad_id, bos_id)
        self._init_annealing(adapt)

    def attention(self, length: int, device):
        if self.fraction() >= 1.0:
            return "bidirectional"
        pos = torch.arange(length, device=device)
        return self._mask(torch.ones(length, length, dtype=torch.bool, device=device), pos, pos)

    def forward_logits(self, model, xt, t, x0, generator):
        sigma = t if model.cfg.time_conditioning else None
        return model(xt, attn=self.attention(xt.shape[1], xt.device), sigma=sigma).logits


class AdaptedBD3Objective(_Annealing, BD3Objective):
    """BD3-LM whose two-stream block mask is reached from its causal part (x_t blocks: causal within the block)."""

    def __init__(self, cfg, diffusion, mask_id, pad_id, bos_id, adapt: AdaptConfig):
        BD3Objective.__init__(self, cfg, diffusion, mask_id, pad_id, bos_id)
        self._init_annealing(adapt)

    def attention_mask(self, length: int, device) -> torch.Tensor:
        target = block_attention_mask(length, self.block_size, device)
        if self.fraction() >= 1.0:
            return target
        pos = two_stream_positions(length, device)
        return self._mask(target, pos, pos)


def check_adaptable(kind: str, adapt: AdaptConfig, keep_bos: bool, tie_weights: bool) -> None:
    adapt.validate()
    if adapt.shift and kind != "mdlm":
        raise UserError(f"adapt.shift=true is implemented for mdlm only ({kind}'s two-stream input has no "
                        "single predecessor per position): set adapt.shift=false")
    if adapt.shift and not keep_bos:
        raise UserError("adapt.shift=true needs a prompt token at position 0 (aligned data with a BOS, "
                        "diffusion.keep_bos=true): use data.mode=aligned or adapt.shift=false")
    if adapt.reinit_head and tie_weights:
        raise UserError("adapt.reinit_head=true would re-draw the embedding too (model.tie_weights=true): set "
                        "model.tie_weights=false or adapt.reinit_head=false")


def copy_ar_weights(model, ar_model, reinit_head: bool = False) -> dict[str, list[str]]:
    """Copy a loaded AR backbone's weights into `model` (same architecture; the diffusion model may add
    parameters, e.g. time conditioning, which keep their initialisation). Returns {'copied', 'kept_init'}."""
    src = ar_model.state_dict()
    dst = model.state_dict()
    if ar_model.cfg.vocab_size != model.cfg.vocab_size:
        raise UserError(f"the AR model's vocabulary ({ar_model.cfg.vocab_size}) differs from this model's "
                        f"({model.cfg.vocab_size}): adapt an AR trained with the same tokenizer (MASK included)")
    shape_bad = [k for k in dst if k in src and src[k].shape != dst[k].shape]
    unused = [k for k in src if k not in dst]
    if shape_bad or unused:
        raise UserError(f"the AR model does not match this architecture (shape mismatch {shape_bad[:3]}, no place "
                        f"for {unused[:3]}): use the same model.* settings as the AR")
    skip = {"head.weight", "head.bias"} if reinit_head else set()
    copied = [k for k in dst if k in src and k not in skip]
    model.load_state_dict({**dst, **{k: src[k] for k in copied}})
    _open_adaln_gates(model)
    return {"copied": copied, "kept_init": [k for k in dst if k not in copied]}


@torch.no_grad()
def _open_adaln_gates(model) -> None:
    """Time conditioning the AR lacks starts as the identity *with the blocks on*: adaLN-zero's gates would
    switch every copied block off, so their bias is set to 1 (shift and scale stay 0) and the weights to 0."""
    for block in getattr(model, "blocks", []):
        lin = getattr(block, "adaln", None)
        if lin is None:
            continue
        lin.weight.zero_()
        shift1, scale1, gate1, shift2, scale2, gate2 = lin.bias.chunk(6)
        for part, value in ((shift1, 0.0), (scale1, 0.0), (gate1, 1.0), (shift2, 0.0), (scale2, 0.0), (gate2, 1.0)):
            part.fill_(value)
