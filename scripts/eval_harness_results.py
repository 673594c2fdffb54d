"""results/eval_harness: LAMBADA-style accuracy and zero-shot NELBO of small built-in models on a local corpus
(documents of the built-in story grammar, saved with `save_to_disk`), and how MAUVE separation grows with the
number of samples (128 ... 1024, MiniLM features: the encoder available offline).

usage: python scripts/eval_harness_results.py AR_RUN MDLM_RUN OUT_DIR   (see results/eval_harness/COMMAND.md)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from paradistill import api
from paradistill.io import atomic_write_text
from paradistill.data.tokenizers import builtin_tokenizer
from paradistill.eval.evaluate import grammar
from paradistill.eval.likelihood import ScoreConfig
from paradistill.eval.mauve import featurize, mauve_score
from paradistill.eval.zeroshot import lambada, zeroshot_perplexity

torch.set_num_threads(1)
SIZES = (128, 256, 512, 1024)


def local_corpus(out: Path, n: int = 400, seed: int = 12345) -> tuple[str, str]:
    """n whole documents of the built-in generator (a seed the training data never used), as a 'text' column."""
    import datasets

    tok = builtin_tokenizer()
    docs = grammar().sample_documents(n, torch.Generator().manual_seed(seed))
    texts = [tok.decode([int(t) for t in d]) for d in docs]
    texts = [t for t in texts if len(t.split()) >= 4]
    path = out / "corpus"
    datasets.Dataset.from_dict({"text": texts}).save_to_disk(str(path))
    # LAMBADA-style passages: every document ends with " ." -- drop it, so the last word is the story's last word
    lam = out / "lambada_passages"
    datasets.Dataset.from_dict({"text": [t[:-2] if t.endswith(" .") else t for t in texts]}).save_to_disk(str(lam))
    return str(path), str(lam)


def texts_of(loaded, result) -> list[str]:
    return [loaded.tokenizer.decode(r.tolist()) for r in result.tokens]


def main(ar_run: str, mdlm_run: str, out: str) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus, passages = local_corpus(Path("runs/eval_harness"))
    rows = {}
    for name, run in (("ar", ar_run), ("mdlm", mdlm_run)):
        loaded = api.load(run)
        cfg = ScoreConfig(mc_draws=32, seed=0)
        lam = lambada(loaded, passages, cfg, limit=200, progress=False)["lambada"]
        lam_dot = lambada(loaded, passages, cfg, limit=200, progress=False, right_context=" .")["lambada"]
        zs = zeroshot_perplexity(loaded, [("stories", corpus)], cfg, max_rows=64, progress=False)
        rows[name] = {"checkpoint": str(loaded.path), "lambada": lam, "lambada_period_before_eos": lam_dot, "zeroshot": zs["corpora"]["stories"],
                      "bound": zs["bound"]}
        print(name, lam["accuracy"], lam_dot["accuracy"], zs["corpora"]["stories"]["ppl"], flush=True)
    # MAUVE: generator samples (reference) vs AR samples and MDLM samples at 8 steps, MiniLM features
    n = max(SIZES)
    ref = [r["text"] for r in __import__("paradistill.eval.evaluate", fromlist=["x"]).generator_records(n, 64, 7)]
    ar = api.load(ar_run)
    md = api.load(mdlm_run)
    sets = {"ar": texts_of(ar, api.generate(ar, n, batch_size=128, seed=1, progress=False)),
            "mdlm 8 steps": texts_of(md, api.generate(md, n, steps=8, batch_size=128, seed=1, progress=False))}
    fq = featurize(ref, "minilm")
    mauve_rows = []
    for label, texts in sets.items():
        fp = featurize(texts, "minilm")
        for size in SIZES:
            scores = [mauve_score(p_features=fp[:size], q_features=fq[:size], seed=s)["mauve"] for s in (1, 2, 3)]
            mauve_rows.append({"set": label, "n": size, "mauve": float(np.mean(scores)), "min": min(scores),
                               "max": max(scores)})
            print(label, size, scores, flush=True)
    res = {"models": rows, "mauve": mauve_rows, "mauve_features": "minilm (all-MiniLM-L6-v2, offline)",
           "corpus": "built-in story grammar documents, seed 12345 (save_to_disk)"}
    atomic_write_text(out_dir / "results.json", json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:4])
