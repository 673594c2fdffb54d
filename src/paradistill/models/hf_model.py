"""A paradistill backbone as a Hugging Face `PreTrainedModel`: one `ParadistillModel` holds the unchanged
`Transformer`, so a `paradistill export` directory loads with `from_pretrained` and gives bit-identical logits for
every kind; diffusion kinds get a small `sample` method. `register()` makes `AutoConfig` / `AutoModel*` resolve
model_type 'paradistill' (no import-time side effects); `interop/hf_export.py` writes and reads such directories.

This module is also the tail of the stand-alone `modeling_paradistill.py` an export carries
(interop/hf_standalone.py inlines transformer.py, noise_embed.py and this file minus the package imports), so
besides the backbone it uses only torch, transformers and `UserError` (there: a ValueError)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from ..errors import UserError
from .transformer import ModelConfig, Transformer

MODEL_TYPE = "paradistill"


class ParadistillConfig(PretrainedConfig):
    model_type = MODEL_TYPE

    def __init__(self, paradistill_kind: str = "mdlm", backbone: dict | None = None, method: dict | None = None,
                 paradistill_family: str | None = None, paradistill_block: bool = False,
                 paradistill_noise_conditioned: bool = False, **kwargs):
        # the kind's properties (kinds.py) are written by the export, so the file needs no kind registry;
        # exports older than these fields: only "ar" was causal
        self.paradistill_kind = paradistill_kind
        self.paradistill_family = paradistill_family or ("ar" if paradistill_kind == "ar" else "diffusion")
        self.paradistill_block = bool(paradistill_block)
        self.paradistill_noise_conditioned = bool(paradistill_noise_conditioned)
        self.backbone = dict(backbone or {})
        self.method = dict(method or {})
        kwargs.setdefault("vocab_size", self.backbone.get("vocab_size"))
        kwargs.setdefault("tie_word_embeddings", bool(self.backbone.get("tie_weights", False)))
        super().__init__(**kwargs)

    @property
    def is_causal(self) -> bool:
        return self.paradistill_family == "ar"


def backbone_config(d: dict) -> ModelConfig:
    """The saved backbone settings; a field this code does not know means a newer paradistill wrote the export."""
    unknown = sorted(set(d) - {f.name for f in dataclasses.fields(ModelConfig)})
    if unknown:
        raise UserError(f"config.json backbone has fields {unknown} this code does not know: export again with this "
                        "paradistill, or upgrade it")
    cfg = ModelConfig(**d)
    cfg.validate()
    return cfg


class ParadistillModel(PreTrainedModel):
    """The paradistill backbone behind the HF interface; `forward` returns logits [B, L, V] (fp32)."""

    config_class = ParadistillConfig
    base_model_prefix = "backbone"
    _tied_weights_keys = {"backbone.head.weight": "backbone.embed.weight"}

    def __init__(self, config: ParadistillConfig):
        super().__init__(config)
        self.backbone = Transformer(backbone_config(config.backbone))
        self.post_init()

    def _init_weights(self, module) -> None:  # the backbone initialises itself; loaded weights replace it
        pass

    def get_input_embeddings(self):
        return self.backbone.embed

    def get_output_embeddings(self):
        return self.backbone.head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, sigma: torch.Tensor | None = None, noise=None,
                **kwargs) -> CausalLMOutput:
        """input_ids: [B, L] long. AR models attend causally, diffusion models bidirectionally (`attention_mask` is
        accepted and ignored). sigma: [B] diffusion time (time-conditioned models); noise: [B, L, V] Gumbel noise
        (Gumbel students; injected where input_ids is the mask id)."""
        attn = "causal" if self.config.is_causal else "bidirectional"
        extra_mask = None
        if noise is not None:
            extra_mask = input_ids == self.config.mask_token_id
        logits = self.backbone(input_ids, attn=attn, sigma=sigma, noise=noise, extra_mask=extra_mask).logits
        loss = None
        if labels is not None and self.config.is_causal:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                   ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)

    # ------------------------------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, num: int = 1, length: int | None = None, steps: int = 64, seed: int = 0,
               temperature: float = 1.0, noise_temperature: float | None = None) -> torch.Tensor:
        """[num, length] token ids. AR: ancestral left to right from BOS. Diffusion kinds: MDLM ancestral sampling
        (each masked position is revealed between t and s with probability (t - s) / t, its token drawn from the
        model), block by block for BD3-LM kinds (earlier blocks clean, block-causal attention); Gumbel students
        draw their noise once (times `noise_temperature`)."""
        cfg, method = self.config, self.config.method
        length = int(length or method.get("seq_len", 64))
        gen = torch.Generator().manual_seed(seed)
        device = self.backbone.embed.weight.device
        bos = cfg.bos_token_id if cfg.bos_token_id is not None else 0
        if cfg.is_causal:
            x = torch.full((num, 1), bos, dtype=torch.long, device=device)
            for _ in range(length - 1):
                logits = self.backbone(x, attn="causal").logits[:, -1].double() / temperature
                if cfg.mask_token_id is not None and cfg.mask_token_id < logits.shape[-1]:
                    logits[:, cfg.mask_token_id] = float("-inf")
                x = torch.cat([x, _draw(logits, gen).to(device)[:, None]], 1)
            return x
        mask = int(cfg.mask_token_id)
        x = torch.full((num, length), mask, dtype=torch.long, device=device)
        if method.get("keep_bos", False):
            x[:, 0] = bos
        noise = None
        if cfg.paradistill_noise_conditioned:
            u = torch.rand(num, length, self.backbone.cfg.vocab_size, generator=gen, dtype=torch.float64)
            g = -torch.log(-torch.log(u.clamp_min(1e-300)))
            nt = noise_temperature if noise_temperature is not None else method.get("gumbel", {}).get(
                "noise_temperature", 1.0)
            noise = (g * nt).float().to(device)
        block = int(method.get("block_size", length)) if cfg.paradistill_block else length
        for start in range(0, length, block):
            end = min(length, start + block)
            pos = torch.arange(end, device=device)
            attn = (pos[None] // block <= pos[:, None] // block) if block < length else "bidirectional"
            for k in range(steps):
                t, s = 1.0 - k / steps, 1.0 - (k + 1) / steps
                xs = x[:, :end]
                sigma = torch.full((num,), t, device=device) if self.backbone.cfg.time_conditioning else None
                extra = noise[:, :end] if noise is not None else None
                logits = self.backbone(xs, attn=attn, sigma=sigma, noise=extra,
                                       extra_mask=(xs == mask) if extra is not None else None).logits
                logits = logits[:, start:end].double() / temperature
                logits[..., mask] = float("-inf")
                tokens = _draw(logits.reshape(-1, logits.shape[-1]), gen).view(num, end - start).to(device)
                reveal = torch.rand(num, end - start, generator=gen).to(device) < (t - s) / t
                block_x = x[:, start:end]
                x[:, start:end] = torch.where((block_x == mask) & reveal, tokens, block_x)
        return x


def _draw(logits: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Gumbel-max draw in float64. logits: [N, V] -> [N] long (on CPU)."""
    u = torch.rand(logits.shape, generator=gen, dtype=torch.float64).clamp_min(1e-300)
    return (logits.cpu().double() - torch.log(-torch.log(u))).argmax(-1)


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
