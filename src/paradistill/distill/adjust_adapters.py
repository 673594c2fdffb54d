"""ADJUST (Bansal & Sanghavi 2025): the adapter a sampler layer sits on. An adapter exposes a frozen diffusion LM's
token embedding, last hidden state, output head and attention pattern, so the sampler layer, the trajectory
recorder and the decoder work the same on paradistill checkpoints and on Hugging Face diffusion LMs."""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

import torch

from ..errors import UserError
from ..kinds import require_kind


@runtime_checkable
class DiffusionLMAdapter(Protocol):
    """What an ADJUST sampler needs from a frozen masked-diffusion LM (ours, or Dream / LLaDA via transformers)."""

    mask_id: int
    vocab_size: int
    hidden_size: int
    embed_size: int

    def hidden_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, L] long -> (hidden [B, L, H] = the output head's input, logits [B, L, V]); one full pass."""

    def embed_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, L] long -> frozen token embeddings [B, L, E]."""

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """h: [B, L, H] -> logits [B, L, V] (the frozen output head)."""

    def attention(self, length: int):
        """Attention spec for the sampler block over `length` positions ("bidirectional" or a bool mask)."""

    def fingerprint(self) -> str:
        """A hash that changes whenever the frozen weights (or their meaning) change."""


def block_causal_mask(length: int, block_size: int, device=None) -> torch.Tensor:
    """[L, L] bool: position i may attend j iff block(j) <= block(i) (BD3-LM decoding with clean prefix blocks)."""
    blocks = torch.arange(length, device=device) // block_size
    return blocks[None, :] <= blocks[:, None]


def weights_fingerprint(module: torch.nn.Module, *extra: str) -> str:
    h = hashlib.sha256("|".join(extra).encode())
    for name, value in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


class ParadistillAdapter:
    """A paradistill MDLM or BD3-LM checkpoint behind the adapter protocol (BD3-LM: block-causal attention)."""

    def __init__(self, model, mask_id: int, kind: str = "mdlm", block_size: int | None = None,
                 tokenizer_fingerprint: str = ""):
        missing = [a for a in ("embed", "head", "cfg") if getattr(model, a, None) is None]
        if missing:
            raise UserError(f"the base model has no {missing}: ADJUST needs the token embedding, the output head "
                            "and the hidden states; use an MDLM or BD3-LM checkpoint of paradistill")
        self.model, self.mask_id, self.kind, self.block_size = model, mask_id, kind, block_size
        self.vocab_size = model.cfg.vocab_size
        self.hidden_size = self.embed_size = model.cfg.dim
        self.rope_base = model.cfg.rope_base
        self._tok_fp = tokenizer_fingerprint
        self._fp = None
        freeze(model)

    @classmethod
    def from_loaded(cls, loaded) -> "ParadistillAdapter":
        kind = require_kind(loaded.kind, "ADJUST (a sampler layer on a masked diffusion base)",
                            f"checkpoint '{loaded.path}'", family="diffusion", noise_conditioned=False)
        if loaded.tokenizer is None:
            raise UserError(f"checkpoint '{loaded.path}' has no tokenizer/ folder: ADJUST needs the mask id")
        block = loaded.record.block_size if kind.block else None
        adapter = cls(loaded.model, loaded.tokenizer.mask_id, loaded.kind, block, loaded.tokenizer.fingerprint())
        check_adapter(adapter, f"checkpoint '{loaded.path}'")
        return adapter

    def attention(self, length: int):
        if self.block_size is None:
            return "bidirectional"
        return block_causal_mask(length, self.block_size, self.model.embed.weight.device)

    @torch.no_grad()
    def hidden_and_logits(self, x):
        # x: [B, L] long
        sigma = None
        if self.model.cfg.time_conditioning:
            sigma = (x == self.mask_id).float().mean(1).clamp_min(1e-3)
        out = self.model(x, attn=self.attention(x.shape[1]), sigma=sigma)
        if out.hidden is None:
            raise UserError("the base model returned no hidden states: ADJUST needs them")
        return out.hidden.float(), out.logits.float()

    def embed_tokens(self, x):
        return self.model.embed(x).float()

    def head(self, h):
        return self.model.head(h.to(self.model.head.weight.dtype)).float()

    def fingerprint(self) -> str:
        if self._fp is None:
            self._fp = weights_fingerprint(self.model, self.kind, str(self.block_size), self._tok_fp)
        return self._fp

    def to(self, device):
        self.model.to(device)
        return self


class HFDiffusionAdapter:
    """A Hugging Face diffusion LM (Dream / LLaDA style) behind the adapter protocol: hidden states from
    `output_hidden_states=True`, `get_input_embeddings()`, and `head` (default: `lm_head` or
    `get_output_embeddings()`); `shift=True` for models whose logits at i predict token i+1 (Dream)."""

    def __init__(self, model, mask_id: int, head=None, shift: bool = False, name: str = "hf"):
        head = head or getattr(model, "lm_head", None) or model.get_output_embeddings()
        emb = model.get_input_embeddings()
        if head is None or emb is None:
            raise UserError(f"model '{name}' exposes no output head / input embeddings: pass head=<module>")
        self.model, self._head, self._emb, self.shift, self.name = model, head, emb, shift, name
        self.mask_id = int(mask_id)
        self.vocab_size = int(head.weight.shape[0])
        self.hidden_size = int(head.weight.shape[1])
        self.embed_size = int(emb.weight.shape[1])
        self.rope_base = 10000.0
        self._fp = None
        freeze(model)
        check_adapter(self, f"model '{name}'")

    def attention(self, length: int):
        return "bidirectional"

    @torch.no_grad()
    def hidden_and_logits(self, x):
        out = self.model(input_ids=x, output_hidden_states=True)
        states = getattr(out, "hidden_states", None)
        if not states:
            raise UserError(f"model '{self.name}' returned no hidden_states: ADJUST needs the last hidden state")
        h, logits = states[-1].float(), out.logits.float()
        if self.shift:  # position i is predicted from position i - 1
            h, logits = torch.cat([h[:, :1], h[:, :-1]], 1), torch.cat([logits[:, :1], logits[:, :-1]], 1)
        return h, logits

    def embed_tokens(self, x):
        return self._emb(x).float()

    def head(self, h):
        return self._head(h.to(self._head.weight.dtype)).float()

    def fingerprint(self) -> str:
        if self._fp is None:
            self._fp = weights_fingerprint(self.model, "hf", self.name, str(self.shift))
        return self._fp

    def to(self, device):
        self.model.to(device)
        return self


def freeze(model: torch.nn.Module) -> None:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)


@torch.no_grad()
def check_adapter(adapter, what: str) -> None:
    """Probe: hidden states exist, have the declared width, and the head maps them to the returned logits."""
    device = next(adapter.model.parameters()).device
    x = torch.full((1, 4), adapter.mask_id, dtype=torch.long, device=device)
    h, logits = adapter.hidden_and_logits(x)
    if h is None or h.dim() != 3 or h.shape[-1] != adapter.hidden_size:
        raise UserError(f"{what}: hidden states of width {adapter.hidden_size} are needed by ADJUST, got "
                        f"{None if h is None else tuple(h.shape)}: use a base that returns its last hidden state")
    again = adapter.head(h)
    if again.shape != logits.shape or not torch.allclose(again, logits, atol=1e-3, rtol=1e-3):
        raise UserError(f"{what}: the output head applied to the hidden states does not give the model's logits, "
                        "so the sampler cannot reuse the head: pass the module that maps the last hidden state "
                        "to logits (head=...)")
    if not 0 <= adapter.mask_id < logits.shape[-1]:
        raise UserError(f"{what}: mask id {adapter.mask_id} is outside the vocabulary ({logits.shape[-1]})")
