"""Tokenise a corpus and pack it into `[N, seq_len]` token memmaps, cached on disk.

Modes (docs/ARCHITECTURE.md, "Sequences"):
- `aligned`: each row starts with BOS at a document boundary; `BOS doc EOS BOS doc EOS ...` fill the row and
  the document that crosses its end is cut (its remainder is dropped; the next row starts at the next doc).
- `wrap`: one stream `BOS doc EOS BOS doc EOS ...` cut every seq_len tokens (MDLM convention).
- `pad`: one document per row (`BOS doc EOS`, truncated to seq_len), the rest PAD.
- `wrap-mdlm`: MDLM's OpenWebText convention: the stream `doc EOS doc EOS ...` cut into chunks of seq_len - 2
  tokens, each row `BOS chunk EOS` (GPT-2: BOS = EOS = <|endoftext|>).
- `wrap-raw`: BD3-LM / Gumbel-distill fine-tuning (insert_train_special=False): `doc EOS doc EOS ...` cut every
  seq_len tokens, no added BOS/EOS.
In `aligned` and `wrap` the incomplete last row is dropped, unless a split is too small for one full row;
then it is kept, filled with PAD. The built-in corpus with the built-in tokenizer in `aligned` mode is
sampled directly with `StoryGrammar.sample` (same distribution, no tokenising).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from .corpora import Corpus, load_corpus, split_mask
from .grammar import StoryGrammar
from .tokenizers import Tokenizer, build_tokenizer, builtin_tokenizer, load_tokenizer

MODES = ("aligned", "wrap", "pad", "wrap-mdlm", "wrap-raw")
FORMAT_VERSION = 1
DEFAULT_BUILTIN_TOKENS = 1_500_000  # train tokens for the built-in corpus when no budget is given


@dataclass
class PreparedData:
    """Packed token rows on disk: `train` / `val` are read-only `[N, seq_len]` memmaps."""

    directory: Path
    train: np.ndarray  # [N_train, L] uint16/uint32
    val: np.ndarray  # [N_val, L]
    tokenizer: Tokenizer
    meta: dict[str, Any]

    @property
    def seq_len(self) -> int:
        return int(self.meta["seq_len"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])


def default_cache_dir() -> Path:
    return Path(os.environ.get("PARADISTILL_CACHE", Path.home() / ".cache" / "paradistill")) / "data"


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _seed_of(*parts: Any) -> int:
    return int(_hash(*parts)[:15], 16)


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size - 1 <= np.iinfo(np.uint16).max else np.uint32)


# --------------------------------------------------------------------------------------------- packing
def pack_aligned(docs: list[np.ndarray], seq_len: int, pad_id: int) -> np.ndarray:
    """docs: each `BOS ... EOS` -> rows [N, L] starting at document boundaries (see module docstring)."""
    lens = np.array([len(d) for d in docs], dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum(lens)])  # cum[k] = start offset of doc k in the stream
    stream = np.concatenate(docs) if docs else np.zeros(0, np.uint32)
    starts, i, n = [], 0, len(docs)
    while i < n and cum[n] - cum[i] >= seq_len:
        starts.append(cum[i])
        i = int(np.searchsorted(cum, cum[i] + seq_len, side="left"))  # first doc starting at/after row end
    if not starts and n:  # too small for one full row: keep it, PAD-filled
        return _pad_row(stream, seq_len, pad_id)
    idx = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(seq_len)  # [N, L]
    return stream[idx]


def pack_wrap(docs: list[np.ndarray], seq_len: int, pad_id: int) -> np.ndarray:
    """One stream cut every seq_len tokens -> [N, L]; the incomplete tail is dropped."""
    stream = np.concatenate(docs) if docs else np.zeros(0, np.uint32)
    n_rows = len(stream) // seq_len
    if n_rows == 0 and len(stream):
        return _pad_row(stream, seq_len, pad_id)
    return stream[: n_rows * seq_len].reshape(n_rows, seq_len)


def pack_pad(docs: list[np.ndarray], seq_len: int, pad_id: int) -> np.ndarray:
    """One document per row (truncated), PAD after it -> [N_docs, L]."""
    rows = np.full((len(docs), seq_len), pad_id, dtype=np.uint32)
    for r, d in enumerate(docs):
        k = min(len(d), seq_len)
        rows[r, :k] = d[:k]
    return rows


def _pad_row(stream: np.ndarray, seq_len: int, pad_id: int) -> np.ndarray:
    row = np.full((1, seq_len), pad_id, dtype=np.uint32)
    row[0, : min(len(stream), seq_len)] = stream[:seq_len]
    return row


def _eos_stream(docs: list[np.ndarray]) -> np.ndarray:
    """`doc EOS doc EOS ...`: each packed document `BOS ids EOS` without its BOS."""
    return np.concatenate([d[1:] for d in docs]) if docs else np.zeros(0, np.uint32)


def pack_wrap_mdlm(docs: list[np.ndarray], seq_len: int, pad_id: int) -> np.ndarray:
    """[N, L] rows `BOS chunk EOS` over chunks of L - 2 tokens of the `doc EOS` stream; BOS/EOS are read from the
    documents (their first / last id); the incomplete tail is dropped."""
    if not docs:
        return np.zeros((0, seq_len), np.uint32)
    bos, eos = int(docs[0][0]), int(docs[0][-1])
    body = pack_wrap([_eos_stream(docs)], seq_len - 2, pad_id)
    n = len(body)
    return np.concatenate([np.full((n, 1), bos, np.uint32), body.astype(np.uint32), np.full((n, 1), eos, np.uint32)], 1)


def pack_wrap_raw(docs: list[np.ndarray], seq_len: int, pad_id: int) -> np.ndarray:
    return pack_wrap([_eos_stream(docs)], seq_len, pad_id)


PACKERS = {"aligned": pack_aligned, "wrap": pack_wrap, "pad": pack_pad, "wrap-mdlm": pack_wrap_mdlm,
           "wrap-raw": pack_wrap_raw}


def _tokenize(corpus: Corpus, tok: Tokenizer, is_val: np.ndarray, progress: bool,
              chunk: int = 512) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Encode every non-empty document as `BOS ids EOS` (uint32), routed to (train, val)."""
    from tqdm.auto import tqdm

    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    texts: list[str] = []
    sides: list[bool] = []

    def flush() -> None:
        for ids, v in zip(tok.encode_batch(texts), sides):
            (val if v else train).append(np.array([tok.bos_id, *ids, tok.eos_id], dtype=np.uint32))
        texts.clear()
        sides.clear()

    with tqdm(total=len(corpus), desc=f"tokenizing {corpus.name}", unit="doc", disable=not progress) as bar:
        for i, text in enumerate(corpus):
            if text and text.strip():
                texts.append(text)
                sides.append(bool(is_val[i]))
            if len(texts) >= chunk:
                flush()
            bar.update(1)
        flush()
    return train, val


# ------------------------------------------------------------------------------------------ cache I/O
def _write(final: Path, train: np.ndarray, val: np.ndarray, tok: Tokenizer, meta: dict[str, Any]) -> Path:
    """Write arrays, tokenizer and meta.json into a temp sibling, then rename it into place (atomic)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        dtype = token_dtype(tok.vocab_size)
        for name, rows in (("train", train), ("val", val)):
            rows = np.ascontiguousarray(rows, dtype=dtype)
            rows.tofile(tmp / f"{name}.bin")
            meta[f"{name}_shape"] = list(rows.shape)
        meta["dtype"] = dtype.name
        tok.save(tmp / "tokenizer")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            tmp.rename(final)
        except OSError:  # another process finished first
            if not (final / "meta.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _memmap(path: Path, shape: list[int], dtype: str) -> np.ndarray:
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if not path.is_file() or path.stat().st_size != expected:
        raise UserError(f"prepared data file '{path}' is missing or has the wrong size (expected {expected} "
                        f"bytes): delete '{path.parent}' and prepare the data again")
    if expected == 0:
        out = np.zeros(shape, dtype=dtype)
        out.flags.writeable = False
        return out
    return np.memmap(path, dtype=dtype, mode="r", shape=tuple(shape))


def load_prepared(directory: str | Path) -> PreparedData:
    """Open a directory written by `prepare_data` (memmaps are read-only)."""
    path = Path(directory)
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise UserError(f"'{path}' is not prepared data (no meta.json): run `paradistill data prepare` or "
                        f"prepare_data(...) to create it")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"'{meta_path}' is not valid JSON ({e}): delete '{path}' and prepare again") from None
    if meta.get("format") != FORMAT_VERSION:
        raise UserError(f"prepared data '{path}' has format {meta.get('format')!r}, this version reads "
                        f"{FORMAT_VERSION}: delete it and prepare the data again")
    train = _memmap(path / "train.bin", meta["train_shape"], meta["dtype"])
    val = _memmap(path / "val.bin", meta["val_shape"], meta["dtype"])
    return PreparedData(path, train, val, load_tokenizer(path / "tokenizer"), meta)


# ---------------------------------------------------------------------------------------------- entry
def _check_args(seq_len: int, mode: str, val_fraction: float) -> None:
    if not isinstance(seq_len, (int, np.integer)) or isinstance(seq_len, bool) or seq_len < 2:
        raise UserError(f"seq_len {seq_len!r} must be an integer >= 2 (BOS plus at least one token), e.g. 128")
    if mode not in MODES:
        raise UserError(f"packing mode '{mode}' is unknown: pass one of {', '.join(MODES)}")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise UserError(f"val_fraction {val_fraction} must be in [0, 1): e.g. 0.05")


def prepare_data(corpus_spec: str, tokenizer_spec: str, seq_len: int, mode: str = "aligned",
                 val_fraction: float = 0.05, cache_dir: str | Path | None = None, num_docs: int | None = None,
                 seed: int = 0, num_tokens: int | None = None, text_column: str | None = None,
                 progress: bool = True, val_last_docs: int | None = None) -> PreparedData:
    """Tokenise + pack `corpus_spec` with `tokenizer_spec` (cached by content); see module docstring.

    `num_docs` keeps the first N documents; `num_tokens` sets the train-token budget of the built-in fast path;
    `val_last_docs` makes the last N documents the validation split (MDLM's OpenWebText: 100000) instead of a
    random `val_fraction`.
    """
    _check_args(seq_len, mode, val_fraction)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    corpus_spec, tokenizer_spec = str(corpus_spec).strip(), str(tokenizer_spec).strip()
    base = {"format": FORMAT_VERSION, "corpus": corpus_spec, "tokenizer": tokenizer_spec, "seq_len": int(seq_len),
            "mode": mode, "val_fraction": float(val_fraction), "seed": int(seed), "num_docs": num_docs}
    if val_last_docs:
        base["val_last_docs"] = int(val_last_docs)
    is_builtin = corpus_spec == "builtin" or corpus_spec.startswith("builtin:")
    if is_builtin and tokenizer_spec == "builtin" and mode == "aligned":
        return _prepare_builtin(cache, base, num_tokens, progress)

    corpus = load_corpus(corpus_spec, num_docs=num_docs, seed=seed, text_column=text_column)
    if val_last_docs:  # the last N documents are the validation split (MDLM's OpenWebText convention)
        is_val = np.arange(len(corpus)) >= len(corpus) - min(int(val_last_docs), len(corpus) - 1)
    else:
        is_val = split_mask(len(corpus), float(val_fraction), seed)
    if val_fraction > 0 and not is_val.any():  # too few documents for a split by document (e.g. one text file
        base["split"] = "tokens"                # without blank lines): split the token stream instead
    fitted = tokenizer_spec.partition(":")[0] in ("char", "word")
    tok = None if fitted else build_tokenizer(tokenizer_spec)
    tok_key = tokenizer_spec if fitted else tok.fingerprint()  # fitted tokenizers follow from the corpus
    key = _hash(corpus.fingerprint(), tok_key, base)
    final = cache / f"{_slug(corpus_spec)}-{key}"
    if (final / "meta.json").is_file():
        return load_prepared(final)

    if tok is None:
        tok = build_tokenizer(tokenizer_spec, texts=iter(corpus))
    train_docs, val_docs = _tokenize(corpus, tok, is_val, progress)
    if not train_docs and not val_docs:
        raise UserError(f"corpus '{corpus_spec}' is empty (no document has non-whitespace text): pass a corpus "
                        f"with text")
    if val_fraction > 0 and not val_docs:
        train_docs, val_docs = split_stream(train_docs, float(val_fraction), int(seq_len), tok.bos_id)
        base["split"] = "tokens"
    packer = PACKERS[mode]
    train = packer(train_docs, seq_len, tok.pad_id).reshape(-1, seq_len)
    val = packer(val_docs, seq_len, tok.pad_id).reshape(-1, seq_len)
    n_tokens = int(sum(len(d) for d in train_docs)), int(sum(len(d) for d in val_docs))
    meta = {**base, "corpus_fingerprint": corpus.fingerprint(), "tokenizer_name": tok.name,
            "tokenizer_fingerprint": tok.fingerprint(), **_ids(tok), "builtin_rows": False,
            "counts": {"train_docs": len(train_docs), "val_docs": len(val_docs),
                       "train_doc_tokens": n_tokens[0], "val_doc_tokens": n_tokens[1],
                       "train_tokens": int(train.size), "val_tokens": int(val.size),
                       "train_pad_tokens": int((train == tok.pad_id).sum()) if mode == "pad" else 0,
                       "val_pad_tokens": int((val == tok.pad_id).sum()) if mode == "pad" else 0}}
    return load_prepared(_write(final, train, val, tok, meta))


def split_stream(docs: list[np.ndarray], val_fraction: float, seq_len: int, bos_id: int
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Split the concatenated token stream: the last `val_fraction` of it (at least one row of `seq_len`
    tokens, at most half the stream) is validation, starting with BOS. With less than two rows of text,
    everything stays training data and the validation split is empty."""
    stream = np.concatenate(docs)
    n_val = max(seq_len, int(round(val_fraction * len(stream))))
    if len(stream) < 2 * seq_len:
        return docs, []
    n_val = min(n_val, len(stream) // 2)
    cut = len(stream) - n_val
    val = stream[cut:]
    if val[0] != bos_id:
        val = np.concatenate([[bos_id], val[1:]]).astype(stream.dtype)  # rows start at a document-like start
    return [stream[:cut]], [val]


def _ids(tok: Tokenizer) -> dict[str, int]:
    return {"vocab_size": tok.vocab_size, "bos_id": tok.bos_id, "eos_id": tok.eos_id, "pad_id": tok.pad_id,
            "mask_id": tok.mask_id}


def _slug(spec: str) -> str:
    name = Path(spec.rstrip("/")).name or "corpus"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40]


def _prepare_builtin(cache: Path, base: dict[str, Any], num_tokens: int | None, progress: bool) -> PreparedData:
    """Rows sampled straight from StoryGrammar (aligned; identical distribution to tokenising its documents)."""
    from tqdm.auto import tqdm

    grammar, tok = StoryGrammar(), builtin_tokenizer()
    seq_len, seed, val_fraction = base["seq_len"], base["seed"], base["val_fraction"]
    n_docs = base["num_docs"] or (int(base["corpus"].partition(":")[2] or 0) or None)
    key = _hash("builtin-rows", grammar.fingerprint(), tok.fingerprint(), base, n_docs, num_tokens)
    final = cache / f"builtin-{key}"
    if (final / "meta.json").is_file():
        return load_prepared(final)
    if num_tokens is None and n_docs is not None:  # budget = documents x their mean length
        sample = grammar.sample_documents(256, torch.Generator().manual_seed(_seed_of("doclen", seed)))
        num_tokens = int(n_docs * float(np.mean([len(d) for d in sample])) * (1 - val_fraction))
    budget = num_tokens or DEFAULT_BUILTIN_TOKENS
    if budget < 1:
        raise UserError(f"num_tokens {num_tokens} must be >= 1 (train tokens to sample from the built-in corpus)")
    n_train = max(1, math.ceil(budget / seq_len))
    n_val = max(1, round(n_train * val_fraction / (1 - val_fraction))) if val_fraction > 0 else 0
    splits = {}
    for name, n in (("train", n_train), ("val", n_val)):
        gen = torch.Generator().manual_seed(_seed_of("builtin", name, seed))
        rows, chunk = [], 1024
        with tqdm(total=n, desc=f"sampling builtin {name}", unit="row", disable=not progress) as bar:
            for start in range(0, n, chunk):
                k = min(chunk, n - start)
                rows.append(grammar.sample(k, seq_len, gen).numpy())  # [k, L]
                bar.update(k)
        splits[name] = np.concatenate(rows) if rows else np.zeros((0, seq_len), np.int64)
    meta = {**base, "corpus_fingerprint": _hash("builtin", grammar.fingerprint()), "tokenizer_name": tok.name,
            "tokenizer_fingerprint": tok.fingerprint(), **_ids(tok), "builtin_rows": True,
            "counts": {"train_docs": int((splits["train"] == tok.bos_id).sum()),
                       "val_docs": int((splits["val"] == tok.bos_id).sum()),
                       "train_tokens": int(splits["train"].size), "val_tokens": int(splits["val"].size),
                       "train_pad_tokens": 0, "val_pad_tokens": 0}}
    return load_prepared(_write(final, splits["train"], splits["val"], tok, meta))


# ---------------------------------------------------------------------------------------------- batches
def num_batches(n_rows: int, batch_size: int, world_size: int = 1, drop_last: bool = True) -> int:
    per_step = batch_size * world_size
    return n_rows // per_step if drop_last else math.ceil(n_rows / per_step)


def batches(array: np.ndarray, batch_size: int, seed: int = 0, epoch: int = 0, start: int = 0,
            shuffle: bool = True, drop_last: bool = True, rank: int = 0, world_size: int = 1
            ) -> Iterator[torch.Tensor]:
    """Yield LongTensor batches [B, L] of rows of `array` [N, L].

    The order is a permutation seeded by (seed, epoch), so resuming at batch `start` reproduces a run exactly.
    With `world_size > 1` each global batch of `batch_size * world_size` rows is split across ranks.
    """
    if batch_size < 1:
        raise UserError(f"batch_size {batch_size} must be >= 1")
    n = len(array)
    if shuffle:
        gen = torch.Generator().manual_seed(_seed_of("batches", seed, epoch))
        order = torch.randperm(n, generator=gen).numpy()
    else:
        order = np.arange(n)
    per_step = batch_size * world_size
    for b in range(start, num_batches(n, batch_size, world_size, drop_last)):
        idx = order[b * per_step: (b + 1) * per_step][rank * batch_size: (rank + 1) * batch_size]
        if len(idx):
            yield torch.from_numpy(np.asarray(array[idx], dtype=np.int64))  # [B, L]
