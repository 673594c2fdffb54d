"""Sample-quality metrics: generative perplexity under a judge, exact NLL under the built-in generator,
unigram entropy, distinct-n, and validation perplexity (NELBO bound for diffusion models, exact for AR).

Conventions (the same for every judge and for the exact generator):
- A sample's scored tokens: the sample with its leading BOS and trailing padding removed (`strip_sample`).
  On the built-in corpus position 0 is BOS and is not scored; tokens 1..L-1 are.
- `Judge.token_nll(seqs)` takes judge-token lists WITHOUT a leading BOS. A judge with a BOS id scores every
  token, the first one as -log p(x_0 | BOS); a judge without a BOS cannot score the first token, which is
  dropped (its array is one shorter). Padding is never scored.
- Sequences longer than the judge's context are scored with a sliding window (context C, stride S): window k
  covers [k*S, k*S + C) of BOS+x; each token is scored once, in the first window where it is not the first
  position, so after the first window every token sees at least C - S tokens of context.
- Gen PPL = exp(total NLL / total scored tokens) over the whole set (pooled); per-sample means are saved.
  The 95% CI is the delta-method interval of this ratio estimator across samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import from_dict
from ..diffusion.bd3lm import BD3Config, BD3Objective
from ..diffusion.objectives import ARObjective, DiffusionConfig, MDLMObjective
from ..errors import UserError
from ..kinds import get_kind, require_kind
from ..loader import load_checkpoint
from ..models.hf import load_hf_causal_lm


# ---------------------------------------------------------------------------------------------- helpers
def strip_sample(tokens: Sequence[int], bos_id: int | None, pad_id: int | None, eos_id: int | None = None
                 ) -> list[int]:
    """The scored part of a sample: leading BOS and trailing padding removed (a PAD that doubles as EOS,
    as in GPT-2, keeps the first one of the trailing run: it ends the document)."""
    toks = [int(t) for t in tokens]
    if toks and bos_id is not None and toks[0] == bos_id:
        toks = toks[1:]
    if pad_id is not None:
        end = len(toks)
        while end and toks[end - 1] == pad_id:
            end -= 1
        if end < len(toks) and pad_id == eos_id:
            end += 1
        toks = toks[:end]
    return toks


def nll_summary(totals: Sequence[float], counts: Sequence[int]) -> dict:
    """Pooled NLL per token, perplexity and 95% CIs from per-sample summed NLLs `totals` [N] and token
    counts `counts` [N] (delta method for the ratio sum(totals) / sum(counts))."""
    a, n = np.asarray(totals, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    keep = n > 0
    a, n = a[keep], n[keep]
    if not len(n):
        raise UserError("no tokens to score: every sample is empty after removing BOS and padding")
    r = float(a.sum() / n.sum())
    m = len(n)
    se = float(np.sqrt(((a - r * n) ** 2).sum() / (m * (m - 1))) / n.mean()) if m > 1 else float("nan")
    lo, hi = r - 1.96 * se, r + 1.96 * se
    return {"nll_per_token": r, "nll_ci95": [lo, hi], "ppl": math.exp(r), "ppl_ci95": [math.exp(lo), math.exp(hi)],
            "num_tokens": int(n.sum()), "num_samples": m, "nll_se": se}


def ppl_ratio(nll_a: float, se_a: float, nll_b: float, se_b: float) -> tuple[float, float, float]:
    """Perplexity ratio exp(nll_a - nll_b) of two independent sample sets and its 95% interval, from the standard
    errors of their mean NLLs per token: (ratio, lo, hi)."""
    d, half = nll_a - nll_b, 1.96 * math.hypot(se_a, se_b)
    return math.exp(d), math.exp(d - half), math.exp(d + half)


# ---------------------------------------------------------------------------------------------- judges
class Judge(Protocol):
    name: str
    vocab_size: int
    bos_id: int | None
    context: int
    stride: int
    fingerprint: str | None  # paradistill tokenizer fingerprint when known (ids usable without retokenising)
    has_tokenizer: bool

    def encode(self, text: str) -> list[int] | None:
        """Judge token ids of `text`, or None when the judge has no tokenizer."""

    def token_nll(self, seqs: list[list[int]]) -> list[np.ndarray]:
        """Per-token NLL (float64) of each sequence of judge ids (no leading BOS; see module docstring)."""


def window_plan(n: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows (start, end, first_target) over a sequence z of length n whose targets are z[1:]."""
    if n <= context:
        return [(0, n, 1)]
    plan, prev_end, start = [], 1, 0
    while True:
        end = min(start + context, n)
        plan.append((start, end, max(prev_end, start + 1)))
        if end == n:
            return plan
        prev_end, start = end, start + stride


class CausalJudge:
    """Shared sliding-window scoring; subclasses implement `_logits(ids [B, T], mask [B, T]) -> [B, T, V]`."""

    name = "judge"
    bos_id: int | None = None
    fingerprint: str | None = None

    def __init__(self, vocab_size: int, context: int, stride: int | None, batch_size: int, device):
        self.vocab_size, self.context, self.batch_size, self.device = vocab_size, int(context), batch_size, device
        self.stride = int(stride) if stride else max(1, self.context // 2)
        if self.context < 2:
            raise UserError(f"judge context {self.context}: must be >= 2 tokens")
        if not 1 <= self.stride <= self.context - 1:
            raise UserError(f"judge stride {self.stride}: must lie in [1, context - 1 = {self.context - 1}] so every "
                            "token is scored once (default: context // 2)")
        if batch_size < 1:
            raise UserError(f"judge batch size {batch_size}: must be >= 1")

    @property
    def has_tokenizer(self) -> bool:
        return False

    def encode(self, text: str) -> list[int] | None:
        return None

    def _logits(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def token_nll(self, seqs: list[list[int]]) -> list[np.ndarray]:
        zs = [([self.bos_id] if self.bos_id is not None else []) + [int(t) for t in s] for s in seqs]
        for i, z in enumerate(zs):
            if z and (min(z) < 0 or max(z) >= self.vocab_size):
                raise UserError(f"sample {i}: token id {max(z)} is outside judge {self.name}'s vocabulary "
                                f"({self.vocab_size}): retokenise the text for this judge")
        out = [np.zeros(max(len(z) - 1, 0)) for z in zs]
        jobs = [(i, s, e, f) for i, z in enumerate(zs) if len(z) > 1 for s, e, f in window_plan(len(z), self.context,
                                                                                                   self.stride)]
        jobs.sort(key=lambda j: j[2] - j[1])
        for b in range(0, len(jobs), self.batch_size):
            batch = jobs[b: b + self.batch_size]
            T = max(e - s for _, s, e, _ in batch)
            ids = torch.zeros(len(batch), T, dtype=torch.long)
            mask = torch.zeros(len(batch), T, dtype=torch.bool)
            for r, (i, s, e, _) in enumerate(batch):
                ids[r, : e - s] = torch.tensor(zs[i][s:e])
                mask[r, : e - s] = True
            logits = self._logits(ids.to(self.device), mask.to(self.device)).float()  # [B, T, V]
            nll = torch.logsumexp(logits[:, :-1], -1) - logits[:, :-1].gather(-1, ids[:, 1:, None].to(logits.device))[..., 0]
            nll = nll.double().cpu().numpy()  # [B, T-1]: entry j = -log p(z[s+j+1] | z[s..s+j])
            for r, (i, s, e, f) in enumerate(batch):
                out[i][f - 1: e - 1] = nll[r, f - 1 - s: e - 1 - s]
        return out


class CheckpointJudge(CausalJudge):
    """A paradistill AR checkpoint as judge: `model(ids, attn="causal").logits`; context defaults to the
    training sequence length (rotary positions beyond it were never trained)."""

    def __init__(self, loaded, context: int | None = None, stride: int | None = None, batch_size: int = 32,
                 device="cpu"):
        require_kind(loaded.kind, "a judge (it must be causal: an AR checkpoint or a Hugging Face causal LM)",
                     f"judge checkpoint '{loaded.path}'", family="ar")
        self.loaded, self.model = loaded, loaded.model.to(device).eval()
        self.name = str(loaded.path)
        self.tokenizer = loaded.tokenizer
        self.bos_id = self.tokenizer.bos_id if self.tokenizer is not None else None
        self.fingerprint = self.tokenizer.fingerprint() if self.tokenizer is not None else None
        trained = loaded.record.seq_len if "seq_len" in loaded.method else self.model.cfg.max_len
        context = context or trained
        if context > self.model.cfg.max_len:
            raise UserError(f"judge context {context} exceeds the model's max_len {self.model.cfg.max_len}")
        super().__init__(self.model.cfg.vocab_size, context, stride, batch_size, device)

    @property
    def has_tokenizer(self) -> bool:
        return self.tokenizer is not None

    def encode(self, text: str) -> list[int] | None:
        return self.tokenizer.encode(text) if self.tokenizer is not None else None

    def _logits(self, ids, mask):
        return self.model(ids, attn="causal").logits  # right padding: causal rows never see it


class HFJudge(CausalJudge):
    """Any Hugging Face causal LM (local directory, or hub name such as gpt2-large when online)."""

    def __init__(self, name_or_dir: str, context: int | None = None, stride: int | None = None,
                 batch_size: int = 8, device="cpu"):

        self.name = str(name_or_dir)
        self.model, self.hf_tokenizer = load_hf_causal_lm(name_or_dir, device)
        cfg = self.model.config
        native = int(getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None) or 1024)
        if context and context > native:
            raise UserError(f"judge context {context} exceeds {self.name}'s {native} positions: pass <= {native}")
        if not _has_tokenizer(name_or_dir, self.hf_tokenizer):
            self.hf_tokenizer = None  # transformers may return an empty stand-in for a folder without one
        tok = self.hf_tokenizer
        self.bos_id = tok.bos_token_id if tok is not None and tok.bos_token_id is not None else cfg.bos_token_id
        vocab = int(self.model.get_output_embeddings().weight.shape[0])
        super().__init__(vocab, context or native, stride, batch_size, device)

    @property
    def has_tokenizer(self) -> bool:
        return self.hf_tokenizer is not None

    def encode(self, text: str) -> list[int] | None:
        if self.hf_tokenizer is None:
            return None
        return list(self.hf_tokenizer.encode(text, add_special_tokens=False))

    def _logits(self, ids, mask):
        return self.model(input_ids=ids, attention_mask=mask.long()).logits


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model")


def _has_tokenizer(spec, tok) -> bool:
    local = Path(str(spec)[3:] if str(spec).startswith("hf:") else str(spec))
    if tok is None or len(tok) < 2:
        return False
    return not local.is_dir() or any((local / f).is_file() for f in TOKENIZER_FILES)


def is_paradistill_checkpoint(spec: str) -> bool:
    p = Path(spec)
    return (p / "latest.json").is_file() or ((p / "model.safetensors").is_file() and (p / "config.json").is_file()
                                             and '"kind"' in (p / "config.json").read_text())


def load_judge(spec: str, context: int | None = None, stride: int | None = None, batch_size: int | None = None,
               device="cpu") -> CausalJudge:
    """A paradistill AR checkpoint (run or checkpoint directory) or a Hugging Face causal LM (`hf:` optional)."""
    if is_paradistill_checkpoint(spec):
        return CheckpointJudge(load_checkpoint(spec, device=device), context, stride, batch_size or 32, device)
    return HFJudge(spec, context, stride, batch_size or 8, device)


def judge_inputs(ids: list[list[int]], texts: list[str | None], judge, sample_vocab: int | None,
                 sample_fingerprint: str | None) -> tuple[list[list[int]], str]:
    """Judge-token sequences for stripped sample ids `ids` (or their `texts`) and how they were obtained:
    'ids' (same tokenizer), 'retokenised' (decoded text encoded by the judge's tokenizer)."""
    if judge.fingerprint is not None and judge.fingerprint == sample_fingerprint:
        return ids, "ids (same tokenizer)"
    if not judge.has_tokenizer:  # without a tokenizer only identical vocabularies can be scored
        if sample_vocab is not None and sample_vocab == judge.vocab_size:
            return ids, "ids (judge has no tokenizer; vocabulary sizes match)"
        raise UserError(f"judge '{judge.name}' has no tokenizer and its vocabulary ({judge.vocab_size}) differs from "
                        f"the samples' ({sample_vocab if sample_vocab is not None else 'unknown'}): retokenisation is "
                        "impossible; save the judge's tokenizer next to it (tokenizer.save_pretrained) or use a judge "
                        "trained with the samples' tokenizer")
    missing = [i for i, t in enumerate(texts) if t is None]
    if missing:
        raise UserError(f"sample {missing[0]} has no text to retokenise for judge '{judge.name}': write samples with "
                        "api.write_samples (which stores the decoded text) or pass --tokenizer")
    seqs = []
    for i, t in enumerate(texts):
        try:
            seqs.append(judge.encode(t))
        except (UserError, KeyError, ValueError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UserError(f"judge '{judge.name}' cannot encode sample {i} ({reason}): use a judge whose tokenizer "
                            "covers the samples' text, e.g. --judge gpt2-large") from None
    return seqs, "retokenised (decoded text encoded by the judge's tokenizer)"


def gen_ppl(judge, seqs: list[list[int]]) -> dict:
    """Generative perplexity of judge-token sequences: pooled summary + per-sample mean NLL."""
    nlls = judge.token_nll(seqs)
    totals, counts = [float(x.sum()) for x in nlls], [len(x) for x in nlls]
    out = nll_summary(totals, counts)
    out["per_sample_nll"] = [t / c if c else None for t, c in zip(totals, counts)]
    out.update(judge=judge.name, context=judge.context, stride=judge.stride,
               first_token="scored given the judge's BOS" if judge.bos_id is not None
               else "unscored (the judge has no BOS token)")
    return out


# ---------------------------------------------------------------------------------------------- exact NLL
def exact_nll(rows: list[list[int]], grammar) -> tuple[np.ndarray, np.ndarray]:
    """rows: built-in token lists starting with BOS (trailing padding removed) -> per-sample summed NLL [N]
    and scored-token counts [N] (positions 1..L-1) under the exact generator `grammar` (StoryGrammar)."""
    totals, counts = np.zeros(len(rows)), np.zeros(len(rows), dtype=np.int64)
    by_len: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_len.setdefault(len(r), []).append(i)
    for length, idx in by_len.items():
        seqs = torch.tensor([rows[i] for i in idx], dtype=torch.long)  # [n, L]
        lp = grammar.token_log_probs(seqs)[:, 1:]  # [n, L-1] float64
        totals[idx] = (-lp).sum(-1).numpy()
        counts[idx] = length - 1
    return totals, counts


def grammar_violations(rows: list[list[int]], grammar) -> np.ndarray:
    """[N] count of tokens the grammar gives probability 0 (scored only through the noise floor
    noise / V'). After one the automaton resynchronises, so the count is about the number of slips."""
    out = np.zeros(len(rows), dtype=np.int64)
    floor = grammar.noise_logp + 1e-9
    by_len: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_len.setdefault(len(r), []).append(i)
    for idx in by_len.values():
        lp = grammar.token_log_probs(torch.tensor([rows[i] for i in idx], dtype=torch.long))[:, 1:]  # [n, L-1]
        out[idx] = (lp <= floor).sum(-1).numpy()
    return out


# ---------------------------------------------------------------------------------------------- diversity
def entropy_of_counts(counts) -> float:
    """Entropy (nats) of the distribution proportional to `counts` (zeros ignored)."""
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    if not len(c):
        return 0.0
    p = c / c.sum()
    return float(-(p * np.log(p)).sum())


def unigram_entropy(tokens: Sequence[int]) -> float:
    """Entropy (nats) of one sample's token counts."""
    if not len(tokens):
        return 0.0
    return entropy_of_counts(np.unique(np.asarray(tokens), return_counts=True)[1])


def distinct_n(seqs: list[Sequence[int]], n: int) -> float:
    """Corpus-level distinct-n: unique n-grams / all n-grams over the set (0 when there are none)."""
    grams, total = set(), 0
    for s in seqs:
        s = tuple(int(t) for t in s)
        for i in range(len(s) - n + 1):
            grams.add(s[i: i + n])
            total += 1
    return len(grams) / total if total else 0.0


# ---------------------------------------------------------------------------------------------- val ppl
def objective_for(loaded):
    """The objective whose `eval_terms` gives the exact NLL (AR) or the NELBO bound (diffusion)."""
    tok, method = loaded.tokenizer, loaded.method
    if tok is None:
        raise UserError(f"checkpoint '{loaded.path}' has no tokenizer/ folder: validation perplexity needs its ids")
    kind = require_kind(loaded.kind, "validation perplexity (evaluate the samples of other kinds instead: exact NLL / "
                        "Gen PPL)", f"checkpoint '{loaded.path}'", noise_conditioned=False)
    if kind.autoregressive:
        return ARObjective(tok.pad_id)
    if kind.family != "diffusion":
        raise UserError(f"validation perplexity is defined for AR and masked-diffusion models; '{loaded.path}' is "
                        f"'{loaded.kind}': evaluate its samples instead (exact NLL / Gen PPL)")
    diff = from_dict(DiffusionConfig, dict(method.get("diffusion", {})), where=f"{loaded.path}: method.diffusion")
    if not kind.block:
        return MDLMObjective(diff, tok.mask_id, tok.pad_id, tok.bos_id)
    cfg = from_dict(BD3Config, dict(method.get("bd3lm", {})), where=f"{loaded.path}: method.bd3lm")
    return BD3Objective(cfg, diff, tok.mask_id, tok.pad_id, tok.bos_id)


@torch.no_grad()
def val_perplexity(loaded, rows: np.ndarray, batch_size: int = 32, max_batches: int | None = None,
                   seed: int = 0, progress: bool = True) -> dict:
    """rows: [N, L] held-out token rows. exp(summed NLL or NELBO / scored tokens); exact for AR, an upper
    bound for diffusion models (one antithetic time draw per row, seeded)."""
    objective = objective_for(loaded)
    model = loaded.model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    n = len(rows) if max_batches is None else min(len(rows), max_batches * batch_size)
    if n < 1:
        raise UserError("validation split is empty: prepare data with data.val_fraction > 0")
    starts = range(0, n, batch_size)
    if progress:
        starts = tqdm(starts, desc=f"val ppl {loaded.kind}", leave=False)
    total, count = 0.0, 0
    for s in starts:
        batch = torch.as_tensor(np.asarray(rows[s: s + batch_size], dtype=np.int64), device=device)  # [B, L]
        t, c = objective.eval_terms(model, batch, gen)
        total, count = total + float(t), count + int(c)
    nll = total / max(count, 1)
    return {"nll_per_token": nll, "ppl": math.exp(nll), "num_tokens": count, "num_rows": n,
            "bound": "exact" if get_kind(loaded.kind).autoregressive else "NELBO upper bound", "seed": seed}
