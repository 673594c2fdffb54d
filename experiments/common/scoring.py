"""One exact scorer for samples of the built-in corpus, built on `paradistill.eval.metrics`.

Every sample is scored under StoryGrammar, the corpus's own generator: Gen PPL = exp of the mean over samples and
positions 1..L-1 of -log p(x_i | x_<i). A token the grammar forbids is scored through the noise floor (~ -12 nats)
and the generator resynchronises after it, so the NLL mostly counts those slips; they are reported beside it.
Experiments pick the fields they print with `ExactScore.row(names)`, which keeps the key names their earlier JSON
outputs used (e.g. `clean_samples` in results/adjust and `violation_free` in results/sdtt are the same number).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

# key in an experiment's output -> field of ExactScore (the aliases keep earlier outputs' key names)
ALIASES = {"violation_free": "clean_samples", "tokens_before_violation": "tokens_before_first_slip"}


@dataclass(frozen=True)
class ExactScore:
    nll: float  # nats per scored token, over all samples (inf if a sample holds a token of probability 0)
    nll_se: float  # one standard error of the per-sample mean NLL (samples with finite NLL)
    gen_ppl: float  # exp(nll)
    gen_ppl_lo: float  # exp(nll - nll_se)
    gen_ppl_hi: float  # exp(nll + nll_se)
    entropy: float  # unigram entropy (nats) of a sample's tokens at positions 1..L-1, mean over samples
    num: int  # samples
    slips_per_sample: float  # tokens scored at the noise floor (off the grammar), mean per sample
    clean_samples: float  # share of samples without a slip
    tokens_before_first_slip: float  # mean position (0-based, of L-1) of the first slip; L-1 when there is none
    impossible_tokens: int  # tokens of probability 0 (PAD / MASK left in a sample)
    impossible_samples: int  # samples holding at least one of them
    slips_se: float = float("nan")  # one standard error of slips_per_sample (over samples)

    def row(self, names: tuple[str, ...]) -> dict:
        """The fields `names` (output key names, aliases allowed) as a dict in that order."""
        values = asdict(self)
        return {name: values[ALIASES.get(name, name)] for name in names}


# the fields each family of experiments has always reported (their JSON keys)
GUMBEL_FIELDS = ("gen_ppl", "gen_ppl_lo", "gen_ppl_hi", "nll", "entropy", "num", "slips_per_sample")
SDTT_FIELDS = ("gen_ppl", "gen_ppl_lo", "gen_ppl_hi", "nll", "entropy", "impossible_tokens", "num", "violation_free",
               "tokens_before_violation", "slips_per_sample")
ADJUST_FIELDS = ("nll", "nll_se", "gen_ppl", "impossible_samples", "tokens_before_first_slip", "slips_per_sample",
                 "clean_samples", "entropy")


def exact_score(tokens: torch.Tensor, grammar=None) -> ExactScore:
    """tokens: [N, L] long, BOS first (the built-in tokenizer) -> ExactScore under `grammar` (default StoryGrammar)."""
    from paradistill.data.grammar import StoryGrammar
    from paradistill.eval.metrics import exact_nll, unigram_entropy

    grammar = grammar or StoryGrammar()
    rows = tokens.tolist()
    totals, counts = exact_nll(rows, grammar)  # [N] summed NLL, [N] scored tokens
    per_sample = totals / counts
    finite = np.isfinite(per_sample)
    nll = float(totals.sum() / counts.sum())
    se = float(per_sample[finite].std(ddof=1) / math.sqrt(finite.sum())) if finite.sum() > 1 else float("nan")
    lp = grammar.token_log_probs(tokens)[:, 1:]  # [N, L-1] float64
    off = (lp <= grammar.noise_logp + 1e-9).numpy()  # the tokens metrics.grammar_violations counts, per position
    slips = off.sum(1)  # [N]
    first = np.where(off.any(1), off.argmax(1), off.shape[1])
    exp = math.exp if math.isfinite(nll) else (lambda _: float("inf"))
    return ExactScore(nll=nll, nll_se=se, gen_ppl=exp(nll), gen_ppl_lo=exp(nll - se), gen_ppl_hi=exp(nll + se),
                      entropy=float(np.mean([unigram_entropy(r[1:]) for r in rows])), num=len(rows),
                      slips_per_sample=float(slips.mean()), clean_samples=float((slips == 0).mean()),
                      tokens_before_first_slip=float(first.mean()),
                      impossible_tokens=int((~torch.isfinite(lp)).sum()), impossible_samples=int((~finite).sum()),
                      slips_se=float(slips.std(ddof=1) / math.sqrt(len(slips))) if len(slips) > 1 else float("nan"))
