"""A paradistill backbone as a Hugging Face `PreTrainedModel`: one `ParadistillModel` holds the unchanged
`Transformer`, so a `paradistill export` directory loads with `from_pretrained` and gives bit-identical logits for
every kind. `register()` makes `AutoConfig` / `AutoModel*` resolve model_type 'paradistill' (no import-time side
effects); `interop/hf_export.py` writes and reads such directories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from ..config import from_dict
from ..errors import UserError
from ..kinds import get_kind
from .transformer import ModelConfig, Transformer

MODEL_TYPE = "paradistill"


class ParadistillConfig(PretrainedConfig):
    model_type = MODEL_TYPE

    def __init__(self, paradistill_kind: str = "mdlm", backbone: dict | None = None, method: dict | None = None,
                 **kwargs):
        self.paradistill_kind = paradistill_kind
        self.backbone = dict(backbone or {})
        self.method = dict(method or {})
        kwargs.setdefault("vocab_size", self.backbone.get("vocab_size"))
        kwargs.setdefault("tie_word_embeddings", bool(self.backbone.get("tie_weights", False)))
        super().__init__(**kwargs)

    @property
    def is_causal(self) -> bool:
        return get_kind(self.paradistill_kind).autoregressive


class ParadistillModel(PreTrainedModel):
    """The paradistill backbone behind the HF interface; `forward` returns logits [B, L, V] (fp32)."""

    config_class = ParadistillConfig
    base_model_prefix = "backbone"
    _tied_weights_keys = {"backbone.head.weight": "backbone.embed.weight"}

    def __init__(self, config: ParadistillConfig):
        super().__init__(config)
        self.backbone = Transformer(from_dict(ModelConfig, config.backbone, where="config.json:backbone"))
        self.post_init()

    def _init_weights(self, module) -> None:  # the backbone initialises itself; loaded weights replace it
        pass

    def get_input_embeddings(self):
        return self.backbone.embed

    def get_output_embeddings(self):
        return self.backbone.head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, sigma: torch.Tensor | None = None, **kwargs) -> CausalLMOutput:
        """input_ids: [B, L] long; AR models attend causally, diffusion models bidirectionally (padding is
        handled by the model's own conventions, so `attention_mask` is accepted and ignored)."""
        attn = "causal" if self.config.is_causal else "bidirectional"
        logits = self.backbone(input_ids, attn=attn, sigma=sigma).logits
        loss = None
        if labels is not None and self.config.is_causal:
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                     labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)


def register() -> None:
    """Make `AutoConfig` / `AutoModel*` resolve model_type 'paradistill' (idempotent)."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

    try:
        AutoConfig.register(MODEL_TYPE, ParadistillConfig)
    except ValueError:
        return  # already registered
    for auto in (AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM):
        auto.register(ParadistillConfig, ParadistillModel, exist_ok=True)


def read_hf_config(src: Path) -> dict[str, Any]:
    if not (src / "config.json").is_file():
        raise UserError(f"'{src}' has no config.json: pass a directory written by `paradistill export`")
    config = json.loads((src / "config.json").read_text())
    if config.get("model_type") != MODEL_TYPE:
        raise UserError(f"'{src}' holds a '{config.get('model_type')}' model, not a paradistill export: use it "
                        "directly as a teacher or judge (hf:DIR), or convert MDLM weights with --from mdlm")
    return config
