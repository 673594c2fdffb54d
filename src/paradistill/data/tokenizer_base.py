"""The tokenizer interface every tokenizer implements, and the helpers their `save` / `fingerprint` share.

The concrete tokenizers live in `data.tokenizers` (char, word) and `data.subword` (GPT-2 BPE, Hugging Face);
`data.tokenizers` is the import point for all of them.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError

CONFIG_FILE = "tokenizer_config.json"


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


class Tokenizer(ABC):
    """Maps text <-> token ids; `vocab_size` counts every id the model must output (MASK included)."""

    name: str
    vocab_size: int
    bos_id: int
    eos_id: int
    pad_id: int
    mask_id: int

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without BOS/EOS."""

    @abstractmethod
    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Text of `ids`; with `skip_special` PAD/BOS/EOS/MASK are dropped."""

    @abstractmethod
    def save(self, directory: str | Path) -> None:
        """Write the tokenizer (and a `tokenizer_config.json` naming its kind) into `directory`."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A short hash that changes whenever any text would encode differently."""

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """`encode` of each text (subclasses may parallelise)."""
        return [self.encode(t) for t in texts]

    def chat_ids(self, text: str) -> list[int]:
        """Token ids of a one-turn user message through the tokenizer's chat template (with the assistant
        generation prompt); only tokenizers that carry a template have one."""
        raise UserError(f"tokenizer {self.name!r} has no chat template: use --prompt instead of --chat")

    @property
    def special_ids(self) -> set[int]:
        return {self.pad_id, self.bos_id, self.eos_id, self.mask_id}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size})"


def _write_config(directory: str | Path, config: dict[str, Any]) -> Path:
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_FILE).write_text(json.dumps(config, indent=1, ensure_ascii=False))
    return path
