"""Adapters to Hugging Face causal LMs (teachers and judges) via `transformers`.

`HFCausalLM(name_or_dir)` loads any local causal-LM directory (or a hub name when online) and exposes
`next_token_log_probs(ids) -> [B, L, V]` (entry i predicts token i+1, the AR-shift convention used by every
teacher and judge in paradistill) and `context_length`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import UserError


def _model_type(directory: Path) -> str | None:
    import json

    try:
        return json.loads((directory / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def load_hf_causal_lm(name_or_dir: str | Path, device: str | torch.device = "cpu", dtype=torch.float32):
    """(model, tokenizer) from a local directory or hub name; clear errors when it is not a causal LM."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = str(name_or_dir)
    if spec.startswith("hf:"):
        spec = spec[3:]
    local = Path(spec)
    if local.exists() and not (local / "config.json").is_file():
        raise UserError(f"'{spec}' has no config.json: pass a directory saved with save_pretrained()")
    if local.is_dir() and _model_type(local) == "paradistill":  # written by `paradistill export`
        from .hf_model import read_hf_config, register

        if read_hf_config(local).get("paradistill_kind") != "ar":
            raise UserError(f"'{spec}' is an exported paradistill diffusion model, not a causal LM: a teacher or "
                            "judge must be autoregressive (export an 'ar' checkpoint)")
        register()
    try:
        model = AutoModelForCausalLM.from_pretrained(spec, torch_dtype=dtype)
    except ValueError as e:
        raise UserError(f"'{spec}' is not a causal language model ({e}); the teacher/judge must be causal "
                        "(e.g. gpt2, a paradistill AR checkpoint)") from None
    except OSError as e:
        raise UserError(f"cannot load Hugging Face model '{spec}': {e}. Offline? pass a local directory") from None
    tokenizer = None
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec)
    except (OSError, ValueError):
        tokenizer = None
    return model.to(device).eval(), tokenizer


class HFCausalLM:
    """A Hugging Face causal LM as a paradistill teacher / judge."""

    def __init__(self, name_or_dir: str | Path, device: str | torch.device = "cpu"):
        self.name = str(name_or_dir)
        self.model, self.hf_tokenizer = load_hf_causal_lm(name_or_dir, device)
        self.vocab_size = int(self.model.get_output_embeddings().weight.shape[0])
        cfg = self.model.config
        self.context_length = int(getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", 1024))
        self.device = device

    @torch.no_grad()
    def next_token_log_probs(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: [B, L] long -> [B, L, V] float32; entry i = log p(x_{i+1} | x_<=i)."""
        if ids.shape[1] > self.context_length:
            raise UserError(f"sequence of {ids.shape[1]} tokens exceeds {self.name}'s context {self.context_length}: "
                            "use a sliding window")
        logits = self.model(input_ids=ids.to(self.device)).logits
        return F.log_softmax(logits.float(), dim=-1)
