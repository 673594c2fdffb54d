"""The lm-eval-harness model type `paradistill`: any paradistill checkpoint (AR, MDLM, BD3-LM, SDTT students,
Gumbel students for generation, ADJUST) behind lm-eval's three request types.

- `loglikelihood`: `likelihood.py` (exact for AR; the NELBO bound with `mc_draws` seeded Monte-Carlo draws for
  masked-diffusion models; ADJUST scores its base).
- `loglikelihood_rolling`: disjoint windows of the checkpoint's training length, each given BOS, summed.
- `generate_until`: batched; any sampler the kind supports (`--sampler`), ADJUST included; each output is cut at
  the first stop sequence and at EOS. Greedy requests (do_sample false / temperature 0) use temperature 1e-4 and an
  argmax final fill.

This module imports lm-eval at its top, so only code that needs the harness imports it (the package itself
imports without lm-eval). How lm-eval finds the model type:
- pyproject.toml declares `ParadistillLM` under the entry-point group `lm_eval.models`, the group that lm-eval's
  plugin discovery reads (upstream PR #4013; in no release up to 0.4.13): with such an lm-eval, a plain
  `lm_eval --model paradistill --model_args pretrained=RUN` finds it after `pip install paradistill`.
- lm-eval <= 0.4.13 reads no entry points and imports no third-party code before resolving `--model`, so there
  `register()` adds the model to lm-eval's registry by hand: `paradistill eval RUN --tasks ...` and the
  `paradistill-lm-eval` command (lm-eval's own CLI with the model registered, same arguments) call it.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import torch
from lm_eval.api.model import LM
from tqdm.auto import tqdm

from ..config import from_dict
from ..errors import UserError
from ..generation import sample_rows
from ..kinds import get_kind
from ..loader import load_checkpoint
from ..sampling.registry import SAMPLERS
from ..seeding import derive_seed
from .likelihood import ScoreConfig, rolling_requests, scorer_for

MODEL_NAME = "paradistill"
GREEDY_TEMPERATURE = 1e-4
# samplers each family of kinds can generate with ("auto": the first one)
SAMPLER_SUPPORT: dict[str, tuple[str, ...]] = {"ar": ("ar",), "diffusion": (*SAMPLERS, "adjust"),
                                               "sampler": ("adjust",)}


@dataclass
class HarnessConfig:
    """`--model_args` of the `paradistill` model type (lm-eval adds batch_size / max_batch_size / device)."""
    pretrained: str | None = None  # run or checkpoint directory
    device: str = "cpu"
    batch_size: str = "16"  # rows per forward / per sampling batch ("auto" = 16)
    max_batch_size: int | None = None  # accepted for lm-eval's CLI; unused
    mc_draws: int = 32  # NELBO Monte-Carlo draws per request (diffusion models)
    seed: int = 0
    window: int | None = None  # scored / generated tokens per row (default: the training length)
    use_ema: bool = True
    sampler: str = "auto"  # generate_until: ar | ancestral | confidence | ... | adjust (auto: by kind)
    steps: int = 64  # diffusion sampling steps
    max_gen_toks: int = 64  # when a task does not say
    tokens_per_pass: int | None = None  # ADJUST
    adjust_mode: str = "adjust"  # ADJUST: adjust | marginal
    adjust: str | None = None  # ADJUST sampler checkpoint trained on this base

    def validate(self) -> None:
        if self.batch_size != "auto" and not (self.batch_size.isdigit() and int(self.batch_size) >= 1):
            raise UserError(f"batch_size={self.batch_size!r}: a positive integer or auto")
        if self.steps < 1 or self.max_gen_toks < 1:
            raise UserError(f"steps={self.steps}, max_gen_toks={self.max_gen_toks}: both must be >= 1")
        if self.adjust_mode not in ("adjust", "marginal"):
            raise UserError(f"adjust_mode={self.adjust_mode!r}: choose adjust (the trained sampler layer) or marginal")

    @property
    def rows(self) -> int:
        return 16 if self.batch_size == "auto" else int(self.batch_size)


def supported_samplers(kind) -> tuple[str, ...]:
    """The samplers a kind can generate with: its family's, less ADJUST for Gumbel students (ADJUST puts its
    sampler layer on a plain masked-diffusion base; a noise-conditioned student is none)."""
    supported = SAMPLER_SUPPORT[kind.family]
    return tuple(s for s in supported if s != "adjust") if kind.noise_conditioned else supported


def choose_sampler(kind_name: str, sampler: str, where: str) -> str:
    """The sampler to generate with, checked against what the kind supports."""
    kind = get_kind(kind_name, where=where)
    supported = supported_samplers(kind)
    if sampler == "auto":
        return "ancestral" if kind.family == "diffusion" else supported[0]
    if sampler not in supported:
        raise UserError(f"{where} is a '{kind.name}' model, which cannot generate with sampler '{sampler}': choose "
                        f"one of {', '.join(supported)} (or auto)")
    return sampler


class ParadistillLM(LM):
    def __init__(self, loaded=None, **kwargs):
        super().__init__()
        kwargs = {k: (str(v) if k == "batch_size" else v) for k, v in kwargs.items()}
        self.cfg = from_dict(HarnessConfig, kwargs, where="paradistill model_args")
        if loaded is None:
            if not self.cfg.pretrained:
                raise UserError("the paradistill model type needs pretrained=RUN_OR_CHECKPOINT in --model_args")
            if self.cfg.device.startswith("cuda") and not torch.cuda.is_available():
                # lm-eval's own CLI passes --device cuda:0 unless told otherwise, also on machines without CUDA
                warnings.warn(f"device '{self.cfg.device}' is not available here (no CUDA): loading on cpu; pass "
                              "--device cpu to silence this", stacklevel=2)
                self.cfg.device = "cpu"
            loaded = load_checkpoint(self.cfg.pretrained, use_ema=self.cfg.use_ema, device=self.cfg.device)
        self.loaded, self.tok = loaded, loaded.tokenizer
        if self.tok is None:
            raise UserError(f"checkpoint '{loaded.path}' has no tokenizer/ folder: it cannot be evaluated on text")
        self.where = f"checkpoint '{loaded.path}'"
        self.sampler = choose_sampler(loaded.kind, self.cfg.sampler, self.where)
        if (self.sampler == "adjust" and get_kind(loaded.kind).family == "diffusion" and not self.cfg.adjust
                and self.cfg.adjust_mode == "adjust"):
            raise UserError(f"sampler=adjust on the base {self.where} needs its trained sampler: add "
                            "adjust=SAMPLER_CKPT (from `paradistill distill adjust`; --adjust in `paradistill "
                            "eval`), or adjust_mode=marginal for the baseline")
        self.score_cfg = ScoreConfig(self.cfg.mc_draws, self.cfg.seed, self.cfg.rows, self.cfg.window)
        self._scorer = None

    # ------------------------------------------------------------------------------------------ scoring
    @property
    def scorer(self):
        if self._scorer is None:
            self._scorer = scorer_for(self.loaded, self.score_cfg)
        return self._scorer

    @property
    def bound(self) -> str:
        return self.scorer.bound

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """BOS + context ids, continuation ids; trailing spaces of the context move to the continuation (as
        lm-eval's own models do), and the continuation is what encoding the whole adds to the context."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        ctx = self.tok.encode(context) if context else []
        whole = self.tok.encode(context + continuation)
        cont = whole[len(ctx):] if whole[: len(ctx)] == ctx else self.tok.encode(continuation)
        return [self.tok.bos_id] + ctx, cont

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = [self.encode_pair(*r.args) for r in requests]
        out = self.scorer.loglikelihood(pairs, progress=not disable_tqdm)
        for r, o in zip(requests, out):
            self.cache_hook.add_partial("loglikelihood", r.args, o)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        out = []
        for r in tqdm(requests, desc="loglikelihood_rolling", leave=False, disable=disable_tqdm):
            windows = rolling_requests(self.tok.encode(r.args[0]), self.tok.bos_id, self.scorer.window)
            total = sum(ll for ll, _ in self.scorer.loglikelihood(windows)) if windows else 0.0
            self.cache_hook.add_partial("loglikelihood_rolling", r.args, total)
            out.append(total)
        return out

    # ------------------------------------------------------------------------------------------ generation
    def _settings(self, gen_kwargs: dict) -> tuple[tuple[str, ...], int, float]:
        kw = dict(gen_kwargs or {})
        until = kw.pop("until", None) or []
        until = (until,) if isinstance(until, str) else tuple(until)
        max_gen = int(kw.pop("max_gen_toks", self.cfg.max_gen_toks))
        temperature = float(kw.pop("temperature", 0.0) or 0.0)
        if not kw.pop("do_sample", temperature > 0):
            temperature = 0.0
        return until, max_gen, temperature

    def _window(self) -> int:
        record = self.loaded.record
        return self.cfg.window or record.seq_len

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        window, block = self._window(), self.loaded.record.block_size if get_kind(self.loaded.kind).block else None
        jobs = []
        for i, r in enumerate(requests):
            context, gen_kwargs = r.args
            until, max_gen, temperature = self._settings(gen_kwargs)
            max_gen = min(max_gen, window - 1)
            ctx = [self.tok.bos_id] + self.tok.encode(context)
            if len(ctx) + max_gen > window:
                ctx = ctx[:1] + ctx[len(ctx) - (window - max_gen - 1):] if window - max_gen > 1 else ctx[:1]
            jobs.append((i, ctx, until, max_gen, temperature))
        autoregressive = get_kind(self.loaded.kind).autoregressive
        # AR batches share the prompt length; diffusion batches share the canvas (longest row, whole blocks)
        jobs.sort(key=lambda j: (j[4], len(j[1]) if autoregressive else len(j[1]) + j[3]))
        out: list[str | None] = [None] * len(requests)
        batches, b = [], []
        for j in jobs:
            if b and (len(b) == self.cfg.rows or b[0][4] != j[4] or autoregressive and len(b[0][1]) != len(j[1])):
                batches.append(b)
                b = []
            b.append(j)
        if b:
            batches.append(b)
        for n, batch in enumerate(tqdm(batches, desc="generate_until", leave=False, disable=disable_tqdm)):
            for (i, ctx, until, max_gen, _), text in zip(batch, self._generate_batch(batch, n, window, block)):
                out[i] = text
                self.cache_hook.add_partial("generate_until", requests[i].args, text)
        return out

    def _generate_batch(self, batch, n: int, window: int, block: int | None) -> list[str]:
        length = max(len(ctx) + max_gen for _, ctx, _, max_gen, _ in batch)
        if block:
            length = min(-(-length // block) * block, window)
        x = torch.full((len(batch), length), self.tok.mask_id, dtype=torch.long)
        fixed = torch.zeros(len(batch), length, dtype=torch.bool)
        for r, (_, ctx, _, _, _) in enumerate(batch):
            x[r, : len(ctx)] = torch.tensor(ctx)
            fixed[r, : len(ctx)] = True
        temperature = batch[0][4]
        device = next(self.loaded.model.parameters()).device
        options = {"tokens_per_pass": self.cfg.tokens_per_pass, "mode": self.cfg.adjust_mode,
                   "adjust_checkpoint": self.cfg.adjust} if self.sampler == "adjust" else {}
        result = sample_rows(self.loaded, x.to(device), fixed.to(device), sampler=self.sampler, steps=self.cfg.steps,
                             generator=torch.Generator().manual_seed(derive_seed(self.cfg.seed, "harness-generate", n)),
                             temperature=temperature or GREEDY_TEMPERATURE,
                             final_fill="argmax" if temperature == 0 else "sample", **options)
        texts = []
        for r, (_, ctx, until, max_gen, _) in enumerate(batch):
            ids = result.tokens[r, len(ctx): len(ctx) + max_gen].tolist()
            texts.append(cut_at_stop(self.tok.decode(cut_at_eos(ids, self.tok)), until))
        return texts

    def settings(self) -> dict:
        return {**asdict(self.cfg), "sampler": self.sampler}


def cut_at_eos(ids: list[int], tok) -> list[int]:
    """Generated ids up to (excluding) the first EOS / MASK."""
    for k, t in enumerate(ids):
        if t in (tok.eos_id, tok.mask_id):
            return ids[:k]
    return ids


def cut_at_stop(text: str, until: tuple[str, ...]) -> str:
    """`text` up to the earliest occurrence of any stop sequence."""
    ends = [text.find(s) for s in until if s and s in text]
    return text[: min(ends)] if ends else text


def register() -> None:
    """Add the `paradistill` model type to lm-eval's registry (idempotent)."""
    from lm_eval.api.registry import get_model, register_model

    try:
        if get_model(MODEL_NAME) is ParadistillLM:
            return
    except ValueError:
        pass
    register_model(MODEL_NAME)(ParadistillLM)
