"""Corpora: sequences of documents (strings) from text files, folders, globs, HF datasets or the built-in grammar.

`load_corpus(spec)` accepts
- `PATH.txt`        a text file; documents are separated by blank lines (one document if there are none),
- `DIR`             every `*.txt` below DIR (recursive, sorted by path), each split as above,
- `GLOB`            e.g. `data/*.txt` (recursive `**` allowed), files sorted by path,
- `hf:NAME[:CONFIG]` a Hugging Face dataset (`datasets.load_dataset`; split "train" if present) or, when
                    NAME is a local directory, one saved with `save_to_disk`; the text column is detected,
- `builtin[:N]`     N documents sampled from the built-in StoryGrammar (seeded).
The train/validation split is by a seeded hash of the document index (`split_mask`), so it is stable.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .grammar import StoryGrammar
from .tokenizers import builtin_tokenizer

SPEC_FORMS = "a text file, a folder of .txt files, a glob (data/*.txt), hf:NAME[:CONFIG], or builtin[:N]"
TEXT_COLUMNS = ("text", "content", "sentence", "document", "story", "article", "body", "sentence1", "question")
DEFAULT_BUILTIN_DOCS = 30_000  # ~46 tokens each: ~1.4M tokens


class Corpus(ABC):
    """An indexable sequence of documents with a `name` and a content `fingerprint()`."""

    name: str

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, i: int) -> str: ...

    @abstractmethod
    def fingerprint(self) -> str:
        """A short hash of the documents (changes when any document changes)."""

    def __iter__(self) -> Iterator[str]:
        for i in range(len(self)):
            yield self[i]

    def split(self, val_fraction: float = 0.05, seed: int = 0) -> tuple[list[str], list[str]]:
        """(train documents, validation documents), deterministic in `seed`."""
        is_val = split_mask(len(self), val_fraction, seed)
        train, val = [], []
        for doc, v in zip(self, is_val):
            (val if v else train).append(doc)
        return train, val

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} documents)"


def split_mask(n: int, val_fraction: float, seed: int = 0) -> np.ndarray:
    """[n] bool, True = validation. Document i's side depends only on (i, seed), never on n.

    With `0 < val_fraction < 1` and n >= 2, each side gets at least one document.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction {val_fraction} must be in [0, 1): e.g. 0.05 for 5% validation documents")
    if n == 0:
        return np.zeros(0, dtype=bool)
    with np.errstate(over="ignore"):  # splitmix64 of (index, seed): uniform in [0, 1)
        z = np.arange(n, dtype=np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15 + 1) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(2**53)
    mask = u < val_fraction
    if val_fraction > 0 and n >= 2:
        if not mask.any():
            mask[np.argmin(u)] = True
        if mask.all():
            mask[np.argmax(u)] = False
    return mask


# ----------------------------------------------------------------------------------------------- files
def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data:
        raise UserError(f"corpus file '{path}' looks binary (it contains NUL bytes): pass UTF-8 text files")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"corpus file '{path}' is not UTF-8 text (byte {e.start}: {e.reason}): convert it to "
                        f"UTF-8 or pass a different file") from None


def split_documents(text: str) -> list[str]:
    """Documents separated by blank lines, stripped; whitespace-only pieces are dropped."""
    pieces = re.split(r"\n[ \t\r\f\v]*\n", text.replace("\r\n", "\n"))
    return [d.strip() for d in pieces if d.strip()]


class TextFilesCorpus(Corpus):
    """Documents from UTF-8 text files (read eagerly; each file split on blank lines)."""

    def __init__(self, paths: list[Path], name: str, num_docs: int | None = None):
        self.name, self.paths = name, paths
        h = hashlib.sha256()
        self.docs: list[str] = []
        for p in paths:
            text = _read_text(p)
            h.update(p.name.encode() + b"\x00" + text.encode() + b"\x00")
            self.docs.extend(split_documents(text))
        if not self.docs:
            raise UserError(f"corpus '{name}' is empty (no non-whitespace text in {len(paths)} file(s)): "
                            f"pass files that contain text")
        if num_docs is not None:
            self.docs = self.docs[:num_docs]
        self._fp = h.hexdigest()[:16] + (f"-n{num_docs}" if num_docs is not None else "")

    def __len__(self) -> int:
        return len(self.docs)

    def __getitem__(self, i: int) -> str:
        return self.docs[i]

    def fingerprint(self) -> str:
        return self._fp


# ------------------------------------------------------------------------------------------ HF datasets
def _pick_text_column(ds: Any, where: str, text_column: str | None) -> str:
    columns = list(ds.column_names)
    if text_column is not None:
        if text_column not in columns:
            raise UserError(f"dataset '{where}' has no column '{text_column}': its columns are {columns}")
        return text_column
    for c in TEXT_COLUMNS:
        if c in columns:
            return c
    for c, feature in ds.features.items():
        if getattr(feature, "dtype", None) in ("string", "large_string"):
            return c
    raise UserError(f"dataset '{where}' has no text column (looked for {list(TEXT_COLUMNS)} or any string "
                    f"column; columns are {columns}): rename the text column to 'text'")


class HFDatasetCorpus(Corpus):
    """Documents from one text column of a Hugging Face `datasets.Dataset` (memory-mapped Arrow)."""

    def __init__(self, ds: Any, name: str, text_column: str | None = None, num_docs: int | None = None):
        self.name = name
        if num_docs is not None and num_docs < len(ds):
            ds = ds.select(range(num_docs))
        if len(ds) == 0:
            raise UserError(f"dataset corpus '{name}' is empty (0 rows): pass a dataset with documents")
        self.column = _pick_text_column(ds, name, text_column)
        self.ds = ds
        self._fp = hashlib.sha256(f"{ds._fingerprint}|{self.column}|{len(ds)}".encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> str:
        return self.ds[int(i)][self.column] or ""

    def __iter__(self) -> Iterator[str]:
        for batch in self.ds.select_columns([self.column]).iter(batch_size=1000):
            for text in batch[self.column]:
                yield text or ""

    def fingerprint(self) -> str:
        return self._fp


def _load_hf(rest: str, text_column: str | None, num_docs: int | None, split: str) -> HFDatasetCorpus:
    import datasets

    name = f"hf:{rest}"
    if Path(rest).is_dir():
        try:
            ds = datasets.load_from_disk(rest)
        except Exception as e:
            raise UserError(f"'{rest}' is not a dataset saved with save_to_disk ({type(e).__name__}: {e}): pass "
                            f"a directory written by Dataset.save_to_disk, or a hub dataset name") from None
    else:
        ds_name, _, config = rest.partition(":")
        if not ds_name:
            raise UserError(f"corpus '{name}': give a dataset name, e.g. hf:wikitext:wikitext-103-raw-v1")
        try:
            ds = datasets.load_dataset(ds_name, config or None)
        except Exception as e:
            raise UserError(f"could not load Hugging Face dataset '{ds_name}'"
                            f"{f' (config {config!r})' if config else ''}: {type(e).__name__}: {e}. Check the "
                            f"name (and config) on huggingface.co/datasets, go online (unset HF_DATASETS_OFFLINE), "
                            f"or pass a local directory saved with Dataset.save_to_disk") from None
    if isinstance(ds, (datasets.DatasetDict, dict)):
        if not ds:
            raise UserError(f"dataset '{name}' has no splits: pass a dataset with a 'train' split")
        ds = ds[split] if split in ds else ds[next(iter(ds))]
    return HFDatasetCorpus(ds, name, text_column, num_docs)


# -------------------------------------------------------------------------------------------- builtin
class BuiltinCorpus(Corpus):
    """`n` documents sampled from StoryGrammar with `seed`, as space-joined words (the builtin tokenizer's text)."""

    def __init__(self, n: int = DEFAULT_BUILTIN_DOCS, seed: int = 0):
        if n < 1:
            raise UserError(f"builtin corpus size {n} must be >= 1: pass builtin:N with N >= 1")
        self.name, self.n, self.seed = f"builtin:{n}", n, seed
        self.grammar = StoryGrammar()
        self._docs: list[str] | None = None  # sampled on first access
        self._fp = hashlib.sha256(f"builtin|{self.grammar.fingerprint()}|{n}|{seed}".encode()).hexdigest()[:16]

    @property
    def docs(self) -> list[str]:
        if self._docs is None:
            import torch

            gen = torch.Generator().manual_seed(self.seed)
            tok = builtin_tokenizer()
            docs = self.grammar.sample_documents(self.n, gen)  # each [BOS, ..., EOS]
            # inner specials (grammar noise) stay as words like "[BOS]" so the builtin tokenizer round-trips
            self._docs = [tok.decode(_strip_bos_eos(d), skip_special=False) for d in docs]
        return self._docs

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> str:
        return self.docs[i]

    def fingerprint(self) -> str:
        return self._fp


def _strip_bos_eos(doc: list[int]) -> list[int]:
    start = 1 if doc and doc[0] == 1 else 0
    end = len(doc) - 1 if len(doc) > start and doc[-1] == 2 else len(doc)
    return doc[start:end]


# ---------------------------------------------------------------------------------------------- loader
def _is_glob(spec: str) -> bool:
    return any(ch in spec for ch in "*?[")


def load_corpus(spec: str, *, num_docs: int | None = None, seed: int = 0, text_column: str | None = None,
                split: str = "train") -> Corpus:
    """Load the corpus named by `spec` (see module docstring); `num_docs` keeps only the first N documents."""
    spec = str(spec).strip()
    if num_docs is not None and num_docs < 1:
        raise UserError(f"num_docs {num_docs} must be >= 1 (or None for the whole corpus '{spec}')")
    if spec == "builtin" or spec.startswith("builtin:"):
        arg = spec.partition(":")[2]
        if arg and not arg.isdigit():
            raise UserError(f"corpus '{spec}': N must be an integer number of documents, e.g. builtin:5000")
        return BuiltinCorpus(num_docs or int(arg or DEFAULT_BUILTIN_DOCS), seed)
    if spec.startswith("hf:"):
        return _load_hf(spec[3:], text_column, num_docs, split)
    path = Path(spec).expanduser()
    if path.is_file():
        return TextFilesCorpus([path], spec, num_docs)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise UserError(f"corpus folder '{spec}' contains no .txt files: add UTF-8 .txt files or pass a file")
        return TextFilesCorpus(files, spec, num_docs)
    if _is_glob(spec):
        files = sorted(Path(p) for p in globlib.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise UserError(f"corpus glob '{spec}' matches no files: check the pattern, or pass a file or folder")
        return TextFilesCorpus(files, spec, num_docs)
    raise UserError(f"corpus '{spec}' does not exist: pass {SPEC_FORMS}")
