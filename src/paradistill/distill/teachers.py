"""Autoregressive teachers for distillation, behind one interface.

`next_token_log_probs(ids: [B, L]) -> [B, L, V]` normalised log-probs, entry i = log p(x_{i+1} | x_<=i)
(the AR-shift convention of models/hf.py and data/grammar.py). `log_prob_slices(ids)` returns a callable
`(start, end) -> entries [start, end)` so that a large-vocabulary teacher runs its trunk once and its output head
one slice at a time (the full `[B, L, V]` never exists). Implementations:
- `GrammarTeacher`: the built-in corpus's exact generator (a perfect teacher);
- `ARCheckpointTeacher`: a paradistill checkpoint of kind "ar";
- `HFTeacher`: any Hugging Face causal-LM directory (GPT-2 style).
`methods.teachers.load_teacher(spec)` picks one: "builtin-generator", "hf:DIR", or a paradistill run/checkpoint directory.
Every model teacher is probed for causality (changing a later token must not change earlier predictions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..data.grammar import StoryGrammar
from ..errors import UserError
from ..kinds import get_kind
from ..models.hf import HFCausalLM

GRAMMAR_SPECS = ("builtin-generator", "builtin", "grammar")


class Teacher:
    name: str = "teacher"
    vocab_size: int = 0
    device: torch.device | str = "cpu"

    def next_token_log_probs(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: [B, L] long -> [B, L, V] normalised log-probs (entry i predicts token i+1)."""
        raise NotImplementedError

    def log_prob_slices(self, ids: torch.Tensor) -> Callable[[int, int], torch.Tensor]:
        """ids: [B, L] -> (start, end) -> [B, end-start, V]; default: the full output, sliced."""
        full = self.next_token_log_probs(ids)
        return lambda s, e: full[:, s:e]

    def to(self, device) -> "Teacher":
        self.device = device
        return self

    def check_student(self, tokenizer) -> None:
        """Raise UserError unless the student's tokenizer has this teacher's vocabulary."""
        check_vocab(self.name, self.vocab_size, tokenizer)


def check_vocab(name: str, teacher_vocab: int, tokenizer) -> None:
    """Teacher and student must share ids. The student may have extra ids only for specials (e.g. a MASK
    appended after GPT-2's 50257 ids): the teacher gives those zero probability."""
    student = int(tokenizer.vocab_size)
    extra = set(range(teacher_vocab, student))
    if teacher_vocab > student or not extra <= set(tokenizer.special_ids):
        raise UserError(f"teacher '{name}' has a vocabulary of {teacher_vocab} ids but the student's tokenizer "
                        f"has {student} (non-special ids beyond the teacher's: {sorted(extra)[:5]}): "
                        "distil into a student trained with the teacher's tokenizer")


def _pad_vocab(logp: torch.Tensor, vocab: int) -> torch.Tensor:
    """[.., V_T] -> [.., vocab] with -inf log-probs for ids the teacher does not have."""
    if logp.shape[-1] == vocab:
        return logp
    pad = logp.new_full((*logp.shape[:-1], vocab - logp.shape[-1]), float("-inf"))
    return torch.cat([logp, pad], dim=-1)


class GrammarTeacher(Teacher):
    """The built-in corpus's exact generator: `StoryGrammar.conditional_logprobs` (float64)."""

    def __init__(self, grammar=None):
        self.grammar = grammar or StoryGrammar()
        self.name = "builtin-generator"
        self.vocab_size = self.grammar.vocab_size

    @torch.no_grad()
    def next_token_log_probs(self, ids):
        return self.grammar.conditional_logprobs(ids.cpu()).to(ids.device)

    def check_student(self, tokenizer) -> None:
        super().check_student(tokenizer)
        tokens = getattr(tokenizer, "tokens", None)
        if tokens is None or list(tokens) != list(self.grammar.vocab):
            raise UserError(f"the built-in generator teaches the built-in corpus only, but the student's tokenizer "
                            f"'{getattr(tokenizer, 'name', tokenizer)}' is not the built-in word tokenizer: use "
                            "data.corpus=builtin data.tokenizer=builtin, or another teacher")


class _ModelTeacher(Teacher):
    """Shared by model teachers: banned ids, vocab padding, chunked head, causality probe."""

    banned: tuple[int, ...] = ()
    student_vocab: int | None = None

    def to(self, device):
        self.model.to(device)
        self.device = device
        return self

    def _trunk(self, ids: torch.Tensor) -> torch.Tensor:  # [B, L] -> hidden [B, L, H]
        raise NotImplementedError

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:  # [B, P, H] -> logits [B, P, V_T]
        raise NotImplementedError

    def _normalise(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.banned:
            logits = logits.index_fill(-1, torch.tensor(self.banned, device=logits.device), float("-inf"))
        logp = F.log_softmax(logits, dim=-1)
        return _pad_vocab(logp, self.student_vocab or logp.shape[-1])

    @torch.no_grad()
    def next_token_log_probs(self, ids):
        return self._normalise(self._head(self._trunk(ids.to(self.device))))

    @torch.no_grad()
    def log_prob_slices(self, ids):
        hidden = self._trunk(ids.to(self.device))
        return lambda s, e: self._normalise(self._head(hidden[:, s:e]))

    def check_causal(self, vocab: int, length: int = 8) -> None:
        """A teacher whose prediction at i depends on tokens after i is not autoregressive."""
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(0, vocab, (2, length), generator=gen)
        changed = ids.clone()
        changed[:, -1] = (ids[:, -1] + 1) % vocab
        a = self.next_token_log_probs(ids)[:, :-1]
        b = self.next_token_log_probs(changed)[:, :-1]
        if not torch.allclose(a, b, atol=1e-4, rtol=1e-4):
            raise UserError(f"teacher '{self.name}' is not causal: its prediction for earlier positions changes "
                            "when a later token changes. Pass an autoregressive (causal) LM as --teacher")


class ARCheckpointTeacher(_ModelTeacher):
    """A paradistill checkpoint of kind 'ar' (its MASK id is given zero probability)."""

    def __init__(self, loaded, device="cpu"):
        if not get_kind(loaded.kind, where=f"teacher '{loaded.path}'").autoregressive:
            raise UserError(f"teacher '{loaded.path}' holds a '{loaded.kind}' model, which is not causal: pass an "
                            "autoregressive run directory (kind 'ar'), hf:DIR, or builtin-generator as --teacher")
        path = loaded.path
        self.loaded, self.model, self.tokenizer = loaded, loaded.model.eval(), loaded.tokenizer
        self.name, self.device = str(path), device
        self.vocab_size = int(self.model.cfg.vocab_size)
        if self.tokenizer is not None:
            self.banned = (int(self.tokenizer.mask_id),)
        for p in self.model.parameters():
            p.requires_grad_(False)

    def _trunk(self, ids):
        return self.model(ids, attn="causal").hidden

    def _head(self, hidden):
        return self.model.head(hidden)

    def check_student(self, tokenizer) -> None:
        super().check_student(tokenizer)
        if self.tokenizer is not None and self.tokenizer.fingerprint() != tokenizer.fingerprint():
            raise UserError(f"teacher '{self.name}' was trained with a different tokenizer than the student "
                            f"({self.tokenizer!r} vs {tokenizer!r}): prepare the student's data with the teacher's "
                            "tokenizer")


class HFTeacher(_ModelTeacher):
    """A Hugging Face causal LM (models/hf.py); the head runs one position slice at a time when it can."""

    def __init__(self, name_or_dir: str | Path, device="cpu"):
        self.lm = HFCausalLM(name_or_dir, device)
        self.model, self.name, self.device = self.lm.model, self.lm.name, device
        self.vocab_size = self.lm.vocab_size
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.check_causal(self.vocab_size)

    def _trunk(self, ids):
        if ids.shape[1] > self.lm.context_length:
            raise UserError(f"sequence of {ids.shape[1]} tokens exceeds teacher {self.name}'s context "
                            f"{self.lm.context_length}: lower data.seq_len")
        base = getattr(self.model, "base_model", None)
        if base is not None and base is not self.model:
            return base(input_ids=ids).last_hidden_state
        return self.model(input_ids=ids).logits  # no separable trunk: the "hidden" is the logits

    def _head(self, hidden):
        base = getattr(self.model, "base_model", None)
        if base is not None and base is not self.model:
            return self.model.get_output_embeddings()(hidden)
        return hidden

    def check_student(self, tokenizer) -> None:
        super().check_student(tokenizer)
        hf_tok = self.lm.hf_tokenizer
        local = Path(self.name.removeprefix("hf:"))
        if local.is_dir() and not any((local / f).is_file() for f in ("tokenizer.json", "vocab.json",
                                                                        "tokenizer_config.json")):
            hf_tok = None  # a model directory without its own tokenizer: nothing to compare
        if hf_tok is not None:
            probe = "The quick brown fox jumps over the lazy dog."
            try:
                same = list(hf_tok.encode(probe, add_special_tokens=False)) == list(tokenizer.encode(probe))
            except (UserError, ValueError, KeyError):
                same = False
            if not same:
                raise UserError(f"teacher '{self.name}' tokenises text differently from the student's tokenizer "
                                f"{tokenizer!r}: prepare the student's data with the teacher's tokenizer "
                                f"(data.tokenizer=hf:{self.name.removeprefix('hf:')})")
        self.student_vocab = int(tokenizer.vocab_size)
        if tokenizer.mask_id < self.vocab_size:
            self.banned = (int(tokenizer.mask_id),)
