"""Subword tokenizers: GPT-2 byte-level BPE from local files, and any Hugging Face tokenizer.

Both load their libraries (`tokenizers`, `transformers`) only when constructed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import UserError
from .tokenizer_base import Tokenizer, _sha, _write_config


def _check_bpe_files(vocab: Path, merges: Path) -> None:
    """Validate GPT-2 `vocab.json` / `merges.txt` in Python (tokenizers panics on some mismatches)."""
    where = f"BPE files '{vocab}' and '{merges}'"
    for p in (vocab, merges):
        if not p.is_file():
            raise UserError(f"{where}: '{p}' does not exist: pass a directory with GPT-2 style vocab.json "
                            f"and merges.txt")
    try:
        table = json.loads(vocab.read_text(encoding="utf-8"))
        lines = merges.read_text(encoding="utf-8").splitlines()
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{where} are unreadable ({e}): pass an intact vocab.json (a JSON token->id map) "
                        f"and merges.txt") from None
    if not isinstance(table, dict) or not all(isinstance(v, int) for v in table.values()):
        raise UserError(f"{where}: vocab.json must be a JSON object mapping tokens to integer ids")
    for n, line in enumerate(lines, 1):
        if not line.strip() or (n == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or any(p not in table for p in parts) or "".join(parts) not in table:
            raise UserError(f"{where} do not match: merges.txt line {n} ({line!r}) uses tokens missing from "
                            f"vocab.json: pass the vocab.json and merges.txt of the same tokenizer")


class BPETokenizer(Tokenizer):
    """GPT-2 byte-level BPE from local `vocab.json` + `merges.txt`.

    `<|endoftext|>` is BOS, EOS and PAD (added if the vocab lacks it); `<|mask|>` is added as MASK.
    """

    EOT, MASK = "<|endoftext|>", "<|mask|>"

    def __init__(self, directory: str | Path, name: str = "gpt2"):
        from tokenizers import Tokenizer as RawTokenizer
        from tokenizers import decoders, models, pre_tokenizers

        self.directory = Path(directory)
        self.name = name
        self.vocab_path, self.merges_path = self.directory / "vocab.json", self.directory / "merges.txt"
        _check_bpe_files(self.vocab_path, self.merges_path)
        try:
            model = models.BPE.from_file(str(self.vocab_path), str(self.merges_path))
        except Exception as e:  # tokenizers raises plain Exception
            raise UserError(f"BPE files '{self.vocab_path}' and '{self.merges_path}' could not be loaded ({e}): "
                            f"pass the vocab.json and merges.txt of the same tokenizer") from None
        tok = RawTokenizer(model)
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([self.EOT, self.MASK])
        self._tok = tok
        self.eos_id = self.bos_id = self.pad_id = tok.token_to_id(self.EOT)
        self.mask_id = tok.token_to_id(self.MASK)
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)  # GPT-2: 50257 + MASK = 50258

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        ids = [int(i) for i in ids]
        if skip_special:
            ids = [i for i in ids if i not in self.special_ids]
        return self._tok.decode(ids, skip_special_tokens=False)

    def save(self, directory: str | Path) -> None:
        path = _write_config(directory, {"kind": "gpt2", "name": self.name})
        for src in (self.vocab_path, self.merges_path):
            if src.resolve() != (path / src.name).resolve():
                shutil.copyfile(src, path / src.name)

    def fingerprint(self) -> str:
        h = hashlib.sha256(b"gpt2")
        for p in (self.vocab_path, self.merges_path):
            h.update(p.read_bytes())
        h.update(f"{self.eos_id},{self.mask_id},{self.vocab_size}".encode())
        return h.hexdigest()[:16]


class HFTokenizer(Tokenizer):
    """Any Hugging Face tokenizer (`AutoTokenizer.from_pretrained`); adds `<|mask|>` if it has no mask token.

    BOS falls back to CLS then EOS; EOS to SEP then BOS; PAD to EOS.
    """

    PROBE = "The quick brown fox, 12 émigrés — jumps!\n  Über naïve ∂x/∂t 東京 🙂"

    def __init__(self, name_or_dir: str | Path, name: str | None = None):
        from transformers import AutoTokenizer

        self.source = str(name_or_dir)
        self.name = name or f"hf:{self.source}"
        try:
            tok = AutoTokenizer.from_pretrained(self.source)
        except Exception as e:
            raise UserError(f"could not load Hugging Face tokenizer '{self.source}' ({type(e).__name__}: {e}): "
                            f"pass a local directory with tokenizer files, or a hub name while online") from None
        if tok.eos_token_id is None and tok.sep_token_id is None and tok.bos_token_id is None \
                and tok.cls_token_id is None:
            tok.add_special_tokens({"eos_token": "<|endoftext|>"})
        if tok.mask_token_id is None:
            tok.add_special_tokens({"mask_token": "<|mask|>"})
        self._tok = tok
        first = lambda *xs: next((x for x in xs if x is not None), None)  # noqa: E731
        self.bos_id = first(tok.bos_token_id, tok.cls_token_id, tok.eos_token_id, tok.sep_token_id)
        self.eos_id = first(tok.eos_token_id, tok.sep_token_id, tok.bos_token_id, tok.cls_token_id)
        self.pad_id = first(tok.pad_token_id, self.eos_id)
        self.mask_id = tok.mask_token_id
        self.vocab_size = len(tok)

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(x) for x in self._tok(list(texts), add_special_tokens=False)["input_ids"]]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special)

    def chat_ids(self, text: str) -> list[int]:
        if not getattr(self._tok, "chat_template", None):
            return super().chat_ids(text)
        ids = self._tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                            tokenize=True)
        return [int(i) for i in (ids["input_ids"] if hasattr(ids, "keys") else ids)]

    def save(self, directory: str | Path) -> None:
        # HF writes its own tokenizer_config.json, so its files go into a subfolder.
        path = _write_config(directory, {"kind": "hf", "name": self.name, "source": self.source, "files": "hf"})
        self._tok.save_pretrained(str(path / "hf"))

    def fingerprint(self) -> str:
        vocab = sorted(self._tok.get_vocab().items(), key=lambda kv: kv[1])
        ids = [self.vocab_size, self.bos_id, self.eos_id, self.pad_id, self.mask_id]
        return _sha(["hf", vocab, ids, self.encode(self.PROBE)])
