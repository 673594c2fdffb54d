"""Conditional log-likelihoods log p(continuation | context) of any paradistill checkpoint: the primitive behind
the lm-eval-harness model type (`harness.py`), LAMBADA and the zero-shot perplexity suite (`zeroshot.py`).

- Autoregressive kinds: exact, sum_i log p(c_i | context, c_<i) from one causal pass.
- Masked-diffusion kinds (MDLM, BD3-LM): the NELBO bound, -E_t[ w(t) sum_{i masked} -log p(c_i | x_t) ], estimated
  with `mc_draws` Monte-Carlo draws of (t, mask) per request, as MDLM / LLaDA do. Only continuation tokens are
  ever masked; the context stays clean. The draws of one request use stratified (antithetic) times
  t_k = eps + (1 - eps) ((u + k / K) mod 1) and a generator seeded by `derive_seed(seed, "nelbo", hash of the
  request's tokens)`, so a request scores the same number whatever batch or order it arrives in.
  BD3-LM: the two-stream block-causal pass of training, one time per draw for every block; a last partial block is
  completed with MASK positions (unknown future tokens, so they are marginalised, never scored).
  "Greedy" (lm-eval's is_greedy) follows SDTT's LAMBADA protocol: all continuation tokens masked, one pass at
  t = eps, and every argmax (MASK excluded) equal to the continuation.
- ADJUST checkpoints score their frozen base (the sampler layer changes how one samples, not the model).
- Gumbel-distilled students are conditioned on sampling noise and define no likelihood: a UserError.

Every request's context must start with BOS when the model was trained with BOS at position 0 (the callers
prepend it). Sequences longer than the window (the checkpoint's training length) keep BOS and the last tokens.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..checkpoint import LoadedCheckpoint, read_config, resolve_checkpoint
from ..config import from_dict
from ..diffusion.bd3lm import BD3Config, bd3_logits
from ..diffusion.mdlm import masked_token_nll
from ..diffusion.objectives import DiffusionConfig
from ..diffusion.schedules import build_schedule
from ..errors import UserError
from ..kinds import get_kind
from ..seeding import derive_seed

Request = tuple  # (context ids incl. BOS, continuation ids[, clean ids after the continuation (diffusion only)])


@dataclass
class ScoreConfig:
    mc_draws: int = 32  # Monte-Carlo draws of (t, mask) per request for diffusion models (SDTT/LLaDA use 32-128)
    seed: int = 0
    batch_size: int = 16  # rows per forward pass
    window: int | None = None  # tokens per scored sequence (default: the checkpoint's training length)

    def validate(self) -> None:
        if self.mc_draws < 1:
            raise UserError(f"mc_draws={self.mc_draws}: must be >= 1 (Monte-Carlo draws of the NELBO)")
        if self.batch_size < 1:
            raise UserError(f"batch_size={self.batch_size}: must be >= 1")
        if self.window is not None and self.window < 2:
            raise UserError(f"window={self.window}: must be >= 2 tokens")


def request_seed(seed: int, ctx: list[int], cont: list[int], after: list[int] = ()) -> int:
    """A seed fixed by the request's tokens (not by its position in a batch)."""
    key = zlib.crc32(repr((len(ctx), ctx, cont, list(after))).encode())
    return derive_seed(seed, "nelbo", key)


class Scorer:
    """Shared request handling; subclasses implement `_score(ctx, cont) -> (log-likelihood, greedy)`."""

    bound = "exact"
    right_context = False  # whether clean tokens after the continuation condition it (masked diffusion: yes)

    def __init__(self, loaded: LoadedCheckpoint, cfg: ScoreConfig):
        cfg.validate()
        if loaded.tokenizer is None:
            raise UserError(f"checkpoint '{loaded.path}' has no tokenizer/ folder: it cannot score text")
        self.loaded, self.cfg, self.model = loaded, cfg, loaded.model.eval()
        self.tokenizer = loaded.tokenizer
        self.device = next(self.model.parameters()).device
        trained = loaded.record.seq_len if "seq_len" in loaded.method else self.model.cfg.max_len
        self.window = min(cfg.window or trained, self.model.cfg.max_len)
        self.keep_bos = loaded.record.keep_bos

    def fit(self, ctx: list[int], cont: list[int], after: list[int] = ()) -> Request:
        """Left-truncate the context so that context + continuation (+ after) fits the window (BOS kept)."""
        if not cont:
            raise UserError("an empty continuation has no likelihood to score: check the task's target text")
        after = list(after)
        room = self.window - len(cont) - len(after)
        head = ctx[:1] if ctx and ctx[0] == self.tokenizer.bos_id else []
        if room < (1 if ctx else 0):
            raise UserError(f"a continuation of {len(cont)} tokens does not fit the model's window of {self.window} "
                            "tokens with its context: use a shorter target or a model trained on longer rows")
        if len(ctx) > room:
            keep = room - len(head)
            ctx = head + (ctx[len(ctx) - keep:] if keep else [])
        return ctx, cont, after

    def loglikelihood(self, requests: list[Request], progress: bool = False) -> list[tuple[float, bool]]:
        it = tqdm(requests, desc=f"loglikelihood {self.loaded.kind}", leave=False, disable=not progress)
        return [self._score(*self.fit(*r)) for r in it]

    def _score(self, ctx: list[int], cont: list[int], after: list[int]) -> tuple[float, bool]:
        raise NotImplementedError


class ARScorer(Scorer):
    bound = "exact"

    @torch.no_grad()
    def _score(self, ctx, cont, after):  # an AR model cannot condition on `after`: ignored
        if not ctx:
            raise UserError("an autoregressive model needs a context of at least one token (BOS) before the "
                            "continuation")
        seq = torch.tensor([ctx + cont], dtype=torch.long, device=self.device)  # [1, T]
        logp = self.model(seq[:, :-1], attn="causal").logits.double().log_softmax(-1)[0]  # [T-1, V]
        pred = logp[len(ctx) - 1:]  # [len(cont), V]: rows predicting the continuation
        target = seq[0, len(ctx):]
        ll = float(pred.gather(-1, target[:, None]).sum())
        return ll, bool((pred.argmax(-1) == target).all())


class DiffusionScorer(Scorer):
    right_context = True

    def __init__(self, loaded, cfg):
        super().__init__(loaded, cfg)
        kind = get_kind(loaded.kind)
        method = loaded.method
        diff = from_dict(DiffusionConfig, dict(method.get("diffusion", {})), where=f"{loaded.path}: method.diffusion")
        self.schedule, self.eps = build_schedule(diff.schedule, diff.eps), diff.eps
        self.block = None
        if kind.block:  # the block size samplers use (method.block_size), else the bd3lm section's
            self.block = loaded.record.block_size or from_dict(
                BD3Config, dict(method.get("bd3lm", {})), where=f"{loaded.path}: method.bd3lm").block_size
        self.mask_id = self.tokenizer.mask_id
        self.bound = f"NELBO upper bound ({cfg.mc_draws} Monte-Carlo draws, seed {cfg.seed})"

    def _logits(self, xt: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """xt, x0: [B, T] long, t: [B] -> logits [B, T, V] at the x_t positions."""
        sigma = t if self.model.cfg.time_conditioning else None
        if self.block is None:
            return self.model(xt, attn="bidirectional", sigma=sigma).logits
        T = xt.shape[1]
        pad = (-T) % self.block  # complete the last block with MASK positions (never scored)
        if pad:
            fill = torch.full((xt.shape[0], pad), self.mask_id, dtype=torch.long, device=xt.device)
            xt, x0 = torch.cat([xt, fill], 1), torch.cat([x0, fill], 1)
        kw = {"sigma": sigma} if sigma is not None else {}
        return bd3_logits(self.model, xt, x0, self.block, **kw)[:, :T]

    @torch.no_grad()
    def _score(self, ctx, cont, after):
        x0 = torch.tensor(ctx + cont + after, dtype=torch.long, device=self.device)  # [T]
        T, n_ctx = len(x0), len(ctx)
        # greedy (SDTT): the whole continuation masked, one pass at t = eps
        xt = x0.clone()
        end = n_ctx + len(cont)
        xt[n_ctx:end] = self.mask_id
        logits = self._logits(xt[None], x0[None], torch.full((1,), self.eps, device=self.device))[0, n_ctx:end]
        logits[:, self.mask_id] = -math.inf
        greedy = bool((logits.argmax(-1) == x0[n_ctx:end]).all())
        # NELBO: K draws of (t, mask) over the continuation only
        K = self.cfg.mc_draws
        gen = torch.Generator().manual_seed(request_seed(self.cfg.seed, ctx, cont, after))
        u = torch.rand((), generator=gen, dtype=torch.float64)
        t = (self.eps + (1 - self.eps) * ((u + torch.arange(K, dtype=torch.float64) / K) % 1.0)).float()  # [K]
        alpha, _ = self.schedule(t)
        draw = torch.rand((K, T), generator=gen)  # [K, T]
        masked = draw >= alpha[:, None]
        masked[:, :n_ctx] = False
        masked[:, end:] = False
        total = 0.0
        for s in range(0, K, self.cfg.batch_size):
            m = masked[s: s + self.cfg.batch_size].to(self.device)
            tb = t[s: s + self.cfg.batch_size].to(self.device)
            rows = x0.expand(len(m), T)
            xt = torch.where(m, torch.full_like(rows, self.mask_id), rows)
            nll = masked_token_nll(self._logits(xt, rows, tb), rows, self.mask_id).double()  # [b, T]
            w = self.schedule.weight(tb.double())[:, None]
            total += float((w * nll * m).sum())
        return -total / K, greedy


SCORERS: dict[str, type[Scorer]] = {"ar": ARScorer, "diffusion": DiffusionScorer}


def base_of(loaded: LoadedCheckpoint) -> LoadedCheckpoint:
    """The frozen base of a loaded ADJUST checkpoint (its model is already in memory)."""
    record = loaded.record
    config = read_config(resolve_checkpoint(record.base))
    return LoadedCheckpoint(Path(record.base), record.base_kind, loaded.model.base, loaded.tokenizer, config)


def scorer_for(loaded: LoadedCheckpoint, cfg: ScoreConfig | None = None) -> Scorer:
    """The scorer of a loaded checkpoint's kind (see the module docstring)."""
    cfg = cfg or ScoreConfig()
    kind = get_kind(loaded.kind, where=f"checkpoint '{loaded.path}'")
    if kind.family == "sampler":
        return scorer_for(base_of(loaded), cfg)
    if kind.noise_conditioned:
        raise UserError(f"'{loaded.path}' is a Gumbel-distilled '{kind.name}' student: it is conditioned on sampling "
                        f"noise and defines no likelihood; score its teacher, or use generation tasks only")
    return SCORERS[kind.family](loaded, cfg)


def rolling_requests(tokens: list[int], bos_id: int | None, window: int) -> list[Request]:
    """Disjoint windows over a whole document for its total log-likelihood: window k scores the next
    `window - 1` tokens given BOS (lm-eval's rolling scheme with a one-token prefix)."""
    step = window - 1
    head = [bos_id] if bos_id is not None else []
    if not head:
        raise UserError("rolling log-likelihood needs a tokenizer with a BOS token to start each window")
    return [(head, tokens[s: s + step]) for s in range(0, len(tokens), step)]
