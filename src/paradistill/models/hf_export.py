"""Hugging Face interop: export a paradistill checkpoint to a `from_pretrained` directory and import it back.

Design choice: one `PreTrainedModel` (`ParadistillModel`) that holds the unchanged `Transformer` backbone.
Every checkpoint kind (AR, MDLM, BD3-LM, Gumbel students with a noise embedding) exports without loss and the
logits are bit-identical, because the same module runs on both sides; mapping onto a stock architecture
(GPT-NeoX with rotary) would only fit AR models and only up to rotary-layout permutations. The classes are
registered with `AutoConfig` / `AutoModel` / `AutoModelForCausalLM` / `AutoModelForMaskedLM` by `register()`
(no `trust_remote_code`, no import-time side effects):

    import paradistill.models.hf_export as hx
    hx.register()
    model = transformers.AutoModel.from_pretrained("export_dir")      # or hx.ParadistillModel.from_pretrained
    logits = model(input_ids).logits                                    # AR: causal; diffusion kinds: bidirectional

The directory holds config.json + model.safetensors (HF), the tokenizer as HF files where a faithful
conversion exists (hf, gpt2, word, char kinds), and `paradistill_tokenizer/` for an exact import back.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from ..errors import UserError
from .transformer import ModelConfig, Transformer

MODEL_TYPE = "paradistill"
TOKENIZER_DIR = "paradistill_tokenizer"
EXPORTABLE_KINDS = ("ar", "mdlm", "bd3lm", "gumbel", "sdtt")


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
        return self.paradistill_kind == "ar"


class ParadistillModel(PreTrainedModel):
    """The paradistill backbone behind the HF interface; `forward` returns logits [B, L, V] (fp32)."""

    config_class = ParadistillConfig
    base_model_prefix = "backbone"
    _tied_weights_keys = {"backbone.head.weight": "backbone.embed.weight"}

    def __init__(self, config: ParadistillConfig):
        super().__init__(config)
        from ..config import from_dict

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


def hf_tokenizer(tokenizer):
    """A `PreTrainedTokenizerFast` with the same ids as a paradistill tokenizer, or None if none is faithful."""
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as RawTokenizer
    from transformers import PreTrainedTokenizerFast

    from ..data.tokenizers import UNK, BPETokenizer, CharTokenizer, HFTokenizer, WordTokenizer

    if isinstance(tokenizer, HFTokenizer):
        return tokenizer._tok
    if isinstance(tokenizer, BPETokenizer):
        raw = tokenizer._tok
        specials = dict(bos_token=tokenizer.EOT, eos_token=tokenizer.EOT, pad_token=tokenizer.EOT,
                        mask_token=tokenizer.MASK)
    elif isinstance(tokenizer, (WordTokenizer, CharTokenizer)):
        vocab = {t: i for i, t in enumerate(tokenizer.tokens)}
        unk = UNK if UNK in vocab else tokenizer.tokens[tokenizer.pad_id]
        raw = RawTokenizer(models.WordLevel(vocab, unk_token=unk))
        if isinstance(tokenizer, WordTokenizer):
            raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        else:
            raw.pre_tokenizer = pre_tokenizers.Split(Regex("(?s)."), behavior="isolated")
            raw.decoder = decoders.Fuse()
        specials = dict(pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]", mask_token="[MASK]")
    else:
        return None
    return PreTrainedTokenizerFast(tokenizer_object=raw, **specials)


def _check_kind(kind: str, where: str) -> None:
    if kind not in EXPORTABLE_KINDS:
        raise UserError(f"'{where}' holds a '{kind}' checkpoint, which has no standalone HF form (an ADJUST sampler "
                        f"sits on a frozen base): export one of the kinds {list(EXPORTABLE_KINDS)}")


def export_hf(checkpoint: str | Path, out_dir: str | Path, use_ema: bool = True) -> Path:
    """Write `out_dir` loadable with `ParadistillModel.from_pretrained` (and `AutoModel` after `register()`)."""
    from ..train.checkpoint import load_checkpoint, read_config, resolve_checkpoint

    ckpt = resolve_checkpoint(checkpoint)
    _check_kind(read_config(ckpt)["kind"], str(ckpt))
    loaded = load_checkpoint(ckpt, use_ema=use_ema)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--to '{out}' exists and is not empty: choose a new directory")
    tok = loaded.tokenizer
    ids = {} if tok is None else dict(bos_token_id=tok.bos_id, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id,
                                      mask_token_id=tok.mask_id)
    config = ParadistillConfig(paradistill_kind=loaded.kind, backbone=asdict(loaded.model.cfg),
                               method=loaded.method, architectures=["ParadistillModel"], **ids)
    model = ParadistillModel(config)
    model.backbone.load_state_dict(loaded.model.state_dict())
    model.save_pretrained(str(out))
    if tok is not None:
        tok.save(out / TOKENIZER_DIR)
        fast = hf_tokenizer(tok)
        if fast is not None:
            fast.save_pretrained(str(out))
    (out / "paradistill.json").write_text(json.dumps({"source": str(ckpt), "kind": loaded.kind,
                                                      "weights": "ema" if use_ema else "raw"}, indent=2))
    return out


def read_hf_config(src: Path) -> dict[str, Any]:
    if not (src / "config.json").is_file():
        raise UserError(f"'{src}' has no config.json: pass a directory written by `paradistill export`")
    config = json.loads((src / "config.json").read_text())
    if config.get("model_type") != MODEL_TYPE:
        raise UserError(f"'{src}' holds a '{config.get('model_type')}' model, not a paradistill export: use it "
                        "directly as a teacher or judge (hf:DIR), or convert MDLM weights with --from mdlm")
    return config


def import_hf(src_dir: str | Path, out_ckpt: str | Path) -> Path:
    """Convert an exported directory back into a paradistill checkpoint (weights bit-identical)."""
    from ..data.tokenizers import HFTokenizer, load_tokenizer
    from ..train.checkpoint import save_checkpoint

    src = Path(src_dir)
    read_hf_config(src)
    register()
    model = ParadistillModel.from_pretrained(str(src)).float()
    tok_dir = src / TOKENIZER_DIR
    tokenizer = load_tokenizer(tok_dir) if tok_dir.is_dir() else HFTokenizer(src)
    if tokenizer.vocab_size != model.backbone.cfg.vocab_size:
        raise UserError(f"tokenizer in '{src}' has {tokenizer.vocab_size} ids but the model {model.backbone.cfg.vocab_size}:"
                        " export again with `paradistill export`")
    return save_checkpoint(Path(out_ckpt), model.backbone, model.config.paradistill_kind, tokenizer,
                           model.config.method)
