"""Tokenizers behind one small interface (see docs/ARCHITECTURE.md, "Token ids").

Every tokenizer exposes `vocab_size` (all ids, specials and MASK included), `bos_id`, `eos_id`, `pad_id`,
`mask_id`, `encode(text)` (no BOS/EOS added), `decode(ids, skip_special=True)`, `save(dir)` and
`fingerprint()`. `load_tokenizer(dir)` reads back any saved tokenizer; `build_tokenizer(spec, texts)` makes
one from a spec string (`char`, `word`, `builtin`, `gpt2:DIR`, `DIR`, `hf:NAME_OR_DIR`).
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError
from .grammar import StoryGrammar
from .subword import BPETokenizer, HFTokenizer
from .tokenizer_base import CONFIG_FILE, Tokenizer, _sha, _write_config

__all__ = ["CONFIG_FILE", "UNK", "BPETokenizer", "CharTokenizer", "HFTokenizer", "Tokenizer", "WordTokenizer",
           "build_tokenizer", "builtin_tokenizer", "load_tokenizer"]

SPECIALS = ["[PAD]", "[BOS]", "[EOS]", "[MASK]"]  # ids 0..3 for char / word tokenizers
UNK = "[UNK]"
SPEC_FORMS = ("char", "word", "word:MAX_SIZE", "builtin", "gpt2:DIR", "DIR (with vocab.json + merges.txt, "
              "or a saved tokenizer)", "hf:NAME_OR_DIR")


class _ListTokenizer(Tokenizer):
    """Shared base for tokenizers with an explicit token list (`tokens[i]` is id i)."""

    kind = ""

    def __init__(self, tokens: Sequence[str], name: str | None = None):
        self.tokens = list(tokens)
        self.name = name or self.kind
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            dup = [t for t, c in Counter(self.tokens).items() if c > 1][:3]
            raise UserError(f"{type(self).__name__} vocabulary has duplicate tokens {dup}: pass unique tokens")
        missing = [s for s in SPECIALS if s not in self.index]
        if missing:
            raise UserError(f"{type(self).__name__} vocabulary lacks special tokens {missing}: include "
                            f"{SPECIALS} (e.g. build it with .fit or .from_vocab)")
        self.pad_id, self.bos_id, self.eos_id, self.mask_id = (self.index[s] for s in SPECIALS)
        self.unk_id = self.index.get(UNK)
        self.vocab_size = len(self.tokens)

    def _token_of(self, i: int) -> str:
        if not 0 <= i < self.vocab_size:
            raise UserError(f"token id {i} is out of range for {self.name} tokenizer (vocab_size "
                            f"{self.vocab_size}): decode ids produced with this tokenizer")
        return self.tokens[i]

    def save(self, directory: str | Path) -> None:
        _write_config(directory, {"kind": self.kind, "name": self.name, "tokens": self.tokens})

    def fingerprint(self) -> str:
        return _sha([self.kind, self.tokens])


class CharTokenizer(_ListTokenizer):
    """One id per character: PAD 0, BOS 1, EOS 2, MASK 3, then the fitted characters, sorted.

    There is no [UNK]: encoding a character the tokenizer was not fitted on raises UserError naming it.
    """

    kind = "char"

    def __init__(self, chars: Sequence[str], name: str = "char"):
        super().__init__(list(SPECIALS) + [c for c in chars if c not in SPECIALS], name)

    @classmethod
    def fit(cls, texts: Iterable[str]) -> CharTokenizer:
        chars: set[str] = set()
        for text in texts:
            chars.update(text)
        if not chars:
            raise UserError("char tokenizer: the texts to fit on are empty: pass a corpus with some text")
        return cls(sorted(chars))

    def encode(self, text: str) -> list[int]:
        try:
            return [self.index[c] for c in text]
        except KeyError:
            pos = next(i for i, c in enumerate(text) if c not in self.index)
            ch = text[pos]
            raise UserError(f"character {ch!r} (U+{ord(ch):04X}) at position {pos} is not in the char "
                            f"tokenizer's vocabulary: remove it, or fit the tokenizer on text that contains "
                            f"it") from None

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        skip = self.special_ids if skip_special else set()
        return "".join(self._token_of(int(i)) for i in ids if int(i) not in skip)


class WordTokenizer(_ListTokenizer):
    """Whitespace-split words. Unknown words map to [UNK] when the vocabulary has it, else UserError."""

    kind = "word"

    @classmethod
    def from_vocab(cls, vocab: Sequence[str], name: str = "word") -> WordTokenizer:
        """Ids equal list positions; if the list has none of PAD/BOS/EOS/MASK they are prepended (ids 0..3)."""
        vocab = list(vocab)
        if not any(s in vocab for s in SPECIALS):
            vocab = list(SPECIALS) + vocab
        return cls(vocab, name)

    @classmethod
    def fit(cls, texts: Iterable[str], min_count: int = 1, max_size: int | None = None) -> WordTokenizer:
        """Specials, [UNK], then words by count (ties alphabetical), keeping `count >= min_count`."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(text.split())
        words = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIALS and w != UNK),
                       key=lambda w: (-counts[w], w))
        if max_size is not None:
            if max_size < len(SPECIALS) + 2:
                raise UserError(f"word tokenizer max_size {max_size} is too small: pass at least "
                                f"{len(SPECIALS) + 2} (4 specials, [UNK], one word)")
            words = words[: max_size - len(SPECIALS) - 1]
        if not words:
            raise UserError("word tokenizer: no words to fit on (empty texts or min_count too high): pass a "
                            "corpus with text or lower min_count")
        return cls(list(SPECIALS) + [UNK] + words)

    def encode(self, text: str) -> list[int]:
        out = []
        for word in text.split():
            i = self.index.get(word, self.unk_id)
            if i is None:
                raise UserError(f"word {word!r} is not in the {self.name} tokenizer's vocabulary (which has no "
                                f"[UNK]): use only its words, or fit a word tokenizer on your text")
            out.append(i)
        return out

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        skip = self.special_ids if skip_special else set()
        return " ".join(self._token_of(int(i)) for i in ids if int(i) not in skip)


def _saved_kind(path: Path) -> str | None:
    try:
        return json.loads((path / CONFIG_FILE).read_text()).get("kind")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Read a tokenizer written by `Tokenizer.save` (or a plain HF / GPT-2 tokenizer directory)."""
    path = Path(directory)
    if not path.is_dir():
        raise UserError(f"tokenizer directory '{path}' does not exist: pass a directory written by "
                        f"Tokenizer.save (e.g. a checkpoint's tokenizer/ folder)")
    cfg_path = path / CONFIG_FILE
    cfg: dict[str, Any] = {}
    if cfg_path.is_file():
        try:
            cfg = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"tokenizer config '{cfg_path}' is not valid JSON ({e}): re-save the tokenizer") from None
    kind = cfg.get("kind")
    if kind in ("char", "word"):
        cls = CharTokenizer if kind == "char" else WordTokenizer
        tok = cls.__new__(cls)
        _ListTokenizer.__init__(tok, cfg["tokens"], cfg.get("name", kind))
        return tok
    if kind == "gpt2":
        return BPETokenizer(path, name=cfg.get("name", "gpt2"))
    if kind == "hf":
        return HFTokenizer(path / cfg.get("files", "hf"), name=cfg.get("name"))
    if kind is None and (cfg_path.is_file() or (path / "tokenizer.json").is_file()):
        return HFTokenizer(path)
    if kind is None and (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        return BPETokenizer(path)
    raise UserError(f"'{path}' holds no tokenizer this version can read (kind {kind!r}): pass a directory "
                    f"written by Tokenizer.save, an HF tokenizer directory, or one with vocab.json + merges.txt")


@functools.lru_cache(maxsize=1)
def _builtin_vocab() -> tuple[str, ...]:
    return tuple(StoryGrammar().vocab)


def builtin_tokenizer() -> WordTokenizer:
    """The built-in grammar's word tokenizer: ids equal the generator's ids."""
    return WordTokenizer.from_vocab(_builtin_vocab(), name="builtin")


def build_tokenizer(spec: str, texts: Iterable[str] | None = None) -> Tokenizer:
    """Make a tokenizer from `spec`; `char` / `word[:MAX_SIZE]` are fitted on `texts`."""
    spec = str(spec).strip()
    kind, _, arg = spec.partition(":")
    if kind in ("char", "word") and (arg == "" or kind == "word"):
        if texts is None:
            raise UserError(f"tokenizer '{spec}' is fitted on a corpus: pass texts (build_tokenizer(spec, texts))")
        if kind == "char":
            return CharTokenizer.fit(texts)
        if arg and not arg.isdigit():
            raise UserError(f"tokenizer '{spec}': MAX_SIZE must be an integer, e.g. word:8000")
        return WordTokenizer.fit(texts, max_size=int(arg) if arg else None)
    if spec == "builtin":
        return builtin_tokenizer()
    if kind == "gpt2" and arg:
        if not Path(arg).is_dir():
            raise UserError(f"tokenizer '{spec}': directory '{arg}' does not exist: pass gpt2:DIR with DIR "
                            f"holding vocab.json and merges.txt")
        return BPETokenizer(arg)
    if kind == "hf" and arg:
        local = Path(arg).expanduser()
        if local.is_dir() and _saved_kind(local) is not None:  # a directory written by Tokenizer.save
            return load_tokenizer(local)
        if arg.startswith(("/", "./", "../", "~")) and not local.is_dir():
            raise UserError(f"tokenizer '{spec}': directory '{arg}' does not exist: pass an existing HF tokenizer "
                            f"directory or a hub name such as hf:gpt2")
        return HFTokenizer(local if local.is_dir() else arg)
    if spec and Path(spec).is_dir():
        return load_tokenizer(spec)
    raise UserError(f"unknown tokenizer spec '{spec}': valid forms are {', '.join(SPEC_FORMS)}")
