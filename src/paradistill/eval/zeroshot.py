"""LAMBADA accuracy the way SDTT reports it, and the zero-shot perplexity suite of MDLM / BD3-LM / DUO.

Corpora come through `datasets`: a hub id (the papers' corpora, listed in CORPORA, online or from the local
cache) or, as `NAME=PATH`, a dataset saved with `save_to_disk` (or a .jsonl file) holding the same text column
(a NAME outside CORPORA is a local corpus of its own: its 'text' column, no detokeniser).
Both go through the same function (`load_texts`), the same detokeniser and the same scoring.

LAMBADA (SDTT's protocol, written anew): each passage splits at its last space into a prefix and the last word
(with its leading space). The context is BOS + prefix. Accuracy: AR models decode greedily, correct when every
token of the word is reproduced (equivalently every teacher-forced argmax matches); masked-diffusion models see
the word's tokens masked followed by a clean EOS and take one pass at t = eps, correct when every argmax matches.
"PPL" is SDTT's: exp(mean over passages of the word's summed NLL), the NELBO bound for diffusion models.

Zero-shot perplexity: each document detokenised, encoded and wrapped as BOS doc EOS; the stream is cut into rows of
BOS + (window - 1) tokens (the checkpoint's training length), and each row's tokens are scored given BOS:
exact for AR, the NELBO bound (seeded Monte-Carlo draws) for diffusion. Reported per corpus: NLL per token and
its exp, with the number of rows and tokens scored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_text
from ..errors import UserError
from .detokenizers import get_detokenizer
from .likelihood import ScoreConfig, scorer_for

FORMAT = "paradistill-zeroshot"


@dataclass(frozen=True)
class Corpus:
    path: str  # datasets hub id
    name: str | None
    split: str
    column: str
    detokenizer: str


CORPORA: dict[str, Corpus] = {
    "wikitext103": Corpus("wikitext", "wikitext-103-raw-v1", "test", "text", "wikitext"),
    "wikitext2": Corpus("wikitext", "wikitext-2-raw-v1", "test", "text", "wikitext"),
    "ptb": Corpus("ptb_text_only", None, "test", "sentence", "ptb"),
    "lm1b": Corpus("lm1b", None, "test", "text", "lm1b"),
    "lambada": Corpus("EleutherAI/lambada_openai", None, "test", "text", "lambada"),
    "ag_news": Corpus("ag_news", None, "test", "text", "none"),
    "pubmed": Corpus("scientific_papers", "pubmed", "test", "article", "scientific_papers"),
    "arxiv": Corpus("scientific_papers", "arxiv", "test", "article", "scientific_papers"),
}
PAPER_SUITE = ("wikitext103", "ptb", "lm1b", "lambada", "ag_news", "pubmed", "arxiv")


def parse_corpora(spec: str) -> list[tuple[str, str | None]]:
    """'ptb,lm1b=/data/lm1b_test' -> [("ptb", None), ("lm1b", "/data/lm1b_test")]; 'paper' = the seven corpora."""
    out = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        name, _, source = item.partition("=")
        names = PAPER_SUITE if name == "paper" else (name,)
        for n in names:
            if n not in CORPORA and source:  # a local corpus of its own: a 'text' column, no detokeniser
                out.append((n, source))
                continue
            if n not in CORPORA:
                raise UserError(f"--zeroshot: unknown corpus '{n}': choose from {', '.join(CORPORA)} or paper "
                                "(NAME=PATH reads a save_to_disk folder or .jsonl file; a name of your own reads its 'text' column)")
            out.append((n, source or None))
    if not out:
        raise UserError("--zeroshot is empty: name corpora, e.g. --zeroshot wikitext103,ptb or paper")
    return out


def load_texts(corpus: str, source: str | None = None, limit: int | None = None) -> list[str]:
    """Raw texts of `corpus`: from the hub id (source None) or a local save_to_disk folder / .jsonl file."""
    import datasets

    c = CORPORA.get(corpus) or Corpus(corpus, None, "test", "text", "none")
    try:
        if source is None:
            ds = datasets.load_dataset(c.path, c.name, split=c.split)
        elif Path(source).is_dir():
            ds = datasets.load_from_disk(source)
        elif Path(source).is_file() and source.endswith(".jsonl"):
            ds = datasets.load_dataset("json", data_files={c.split: source}, split=c.split)
        else:
            raise UserError(f"corpus '{corpus}': '{source}' is neither a save_to_disk folder nor a .jsonl file")
    except (OSError, ConnectionError, ValueError, FileNotFoundError) as e:
        if isinstance(e, UserError):
            raise
        where = f"hub dataset '{c.path}'" + (f" ({c.name})" if c.name else "") if source is None else f"'{source}'"
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise UserError(f"corpus '{corpus}': cannot load {where} ({reason}): go online once to cache it, or pass "
                        f"{corpus}=PATH to a copy saved with save_to_disk") from None
    if isinstance(ds, datasets.DatasetDict):
        if c.split not in ds:
            raise UserError(f"corpus '{corpus}': '{source}' has no '{c.split}' split (it has {', '.join(ds)})")
        ds = ds[c.split]
    if c.column not in ds.column_names:
        raise UserError(f"corpus '{corpus}': '{source or c.path}' has no '{c.column}' column (it has "
                        f"{', '.join(ds.column_names)})")
    texts = [t for t in ds[c.column] if t and t.strip()]
    return texts[:limit] if limit else texts


def zeroshot_rows(texts: list[str], tok, detok: str, window: int, max_rows: int | None = None) -> list[list[int]]:
    """Token rows of `window - 1` tokens (the last one shorter) from the detokenised documents, each wrapped as
    BOS doc EOS and concatenated (MDLM's wrap)."""
    fn = get_detokenizer(detok)
    stream: list[int] = []
    need = None if max_rows is None else max_rows * (window - 1)
    for t in texts:
        stream += [tok.bos_id] + tok.encode(fn(t)) + [tok.eos_id]
        if need is not None and len(stream) >= need:
            break
    step = window - 1
    rows = [stream[s: s + step] for s in range(0, len(stream), step)]
    return rows[:max_rows] if max_rows else rows


def zeroshot_perplexity(loaded, corpora: list[tuple[str, str | None]], cfg: ScoreConfig | None = None,
                        max_rows: int | None = 64, progress: bool = True) -> dict[str, Any]:
    """Per corpus: NLL per token (exact for AR, NELBO bound for diffusion) over rows of the training length."""
    scorer = scorer_for(loaded, cfg or ScoreConfig())
    tok = loaded.tokenizer
    out: dict[str, Any] = {}
    for name, source in corpora:
        c = CORPORA.get(name) or Corpus(name, None, "test", "text", "none")
        rows = zeroshot_rows(load_texts(name, source), tok, c.detokenizer, scorer.window, max_rows)
        lls = [ll for ll, _ in scorer.loglikelihood([([tok.bos_id], r) for r in rows], progress=progress)]
        n = sum(len(r) for r in rows)
        nll = -sum(lls) / max(n, 1)
        out[name] = {"nll_per_token": nll, "ppl": math.exp(nll), "rows": len(rows), "tokens": n,
                     "source": source or f"hub:{c.path}" + (f"/{c.name}" if c.name else ""),
                     "detokenizer": c.detokenizer}
    return {"format": FORMAT, "checkpoint": str(loaded.path), "kind": loaded.kind, "window": scorer.window,
            "bound": scorer.bound, "corpora": out}


def lambada(loaded, source: str | None = None, cfg: ScoreConfig | None = None, limit: int | None = None,
            progress: bool = True, right_context: str = "") -> dict[str, Any]:
    """SDTT-style LAMBADA accuracy and word perplexity (see module docstring). `right_context`: clean text a
    diffusion model sees between the masked word and EOS (SDTT: none; a corpus whose documents end in " ." may
    pass " ." so the masked word sits where such a word sits in training)."""
    scorer = scorer_for(loaded, cfg or ScoreConfig())
    tok = loaded.tokenizer
    requests = []
    for text in load_texts("lambada", source, limit):
        cut = text.rstrip().rfind(" ")
        if cut <= 0:
            continue
        prefix, word = text[:cut], text[cut:].rstrip()
        after = tok.encode(right_context) + [tok.eos_id] if scorer.right_context else []
        requests.append(([tok.bos_id] + tok.encode(prefix), tok.encode(word), after))
    if not requests:
        raise UserError(f"LAMBADA source '{source}' holds no passage with at least two words")
    scored = scorer.loglikelihood(requests, progress=progress)
    lls = np.array([ll for ll, _ in scored])
    n_tok = sum(len(r[1]) for r in requests)
    acc = float(np.mean([g for _, g in scored]))
    se = float(np.sqrt(acc * (1 - acc) / len(scored)))
    return {"format": FORMAT, "checkpoint": str(loaded.path), "kind": loaded.kind, "window": scorer.window,
            "bound": scorer.bound, "lambada": {
                "accuracy": acc, "accuracy_ci95": [acc - 1.96 * se, acc + 1.96 * se], "num_passages": len(scored),
                "ppl": float(math.exp(-lls.mean())), "nll_per_token": float(-lls.sum() / n_tok),
                "source": source or "hub:EleutherAI/lambada_openai", "right_context": right_context,
                "protocol": "SDTT: last word after the last space; AR greedy, diffusion one pass at t=eps with the "
                            "word masked before a clean EOS; ppl = exp(mean word NLL)"}}


def format_zeroshot(res: dict[str, Any]) -> str:
    lines = [f"`{res['checkpoint']}` ({res['kind']}), rows of {res['window']} tokens; likelihood: {res['bound']}", ""]
    if "lambada" in res:
        lam = res["lambada"]
        lines += ["| LAMBADA | accuracy [95% CI] | word PPL | passages | source |", "|---|---|---|---|---|",
                  f"| SDTT protocol | {lam['accuracy']:.4f} [{lam['accuracy_ci95'][0]:.4f}, {lam['accuracy_ci95'][1]:.4f}]"
                  f" | {lam['ppl']:.3f} | {lam['num_passages']} | {lam['source']} |", ""]
    if "corpora" in res:
        lines += ["| corpus | NLL / token | PPL | rows | tokens | source |", "|---|---|---|---|---|---|"]
        for name, r in res["corpora"].items():
            lines.append(f"| {name} | {r['nll_per_token']:.4f} | {r['ppl']:.3f} | {r['rows']} | {r['tokens']} | "
                         f"{r['source']} |")
    return "\n".join(lines) + "\n"


def write_zeroshot(res: dict[str, Any], json_path: str | Path) -> tuple[Path, Path]:
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json_path, json.dumps(res, indent=1))
    md = json_path.with_suffix(".md")
    atomic_write_text(md, format_zeroshot(res))
    return json_path, md
