"""Hugging Face interop: export a paradistill checkpoint to a `from_pretrained` directory and import it back.

Design choice: one `PreTrainedModel` (`ParadistillModel`) that holds the unchanged `Transformer` backbone.
Every checkpoint kind (AR, MDLM, BD3-LM, Gumbel students with a noise embedding) exports without loss and the
logits are bit-identical, because the same module runs on both sides; mapping onto a stock architecture
(GPT-NeoX with rotary) would only fit AR models and only up to rotary-layout permutations. The classes are
registered with `AutoConfig` / `AutoModel` / `AutoModelForCausalLM` / `AutoModelForMaskedLM` by `register()`
(no `trust_remote_code`, no import-time side effects):

    import paradistill.interop.hf_export as hx
    hx.register()
    model = transformers.AutoModel.from_pretrained("export_dir")      # or hx.ParadistillModel.from_pretrained
    logits = model(input_ids).logits                                    # AR: causal; diffusion kinds: bidirectional

The directory holds config.json (with `auto_map`) + model.safetensors (HF), `modeling_paradistill.py` (a
self-contained copy of the backbone, interop/hf_standalone.py) so that `from_pretrained(DIR, trust_remote_code=True)`
works where paradistill is not installed, the tokenizer as HF files where a faithful conversion exists (hf, gpt2,
word, char kinds), and `paradistill_tokenizer/` for an exact import back.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict
from pathlib import Path

from ..checkpoint import save_checkpoint
from ..data.tokenizers import UNK, BPETokenizer, CharTokenizer, HFTokenizer, WordTokenizer
from ..errors import UserError
from ..io import writable_location
from ..kinds import KINDS, get_kind
from ..loading import load
from ..models.hf_model import ParadistillConfig, ParadistillModel, read_hf_config, register  # noqa: F401 (re-exported)
from .hf_standalone import MODULE_NAME, auto_map, modeling_source

TOKENIZER_DIR = "paradistill_tokenizer"
EXPORTABLE_KINDS = tuple(k.name for k in KINDS.values() if k.export_as)


def hf_tokenizer(tokenizer):
    """A `PreTrainedTokenizerFast` with the same ids as a paradistill tokenizer, or None if none is faithful."""
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as RawTokenizer
    from transformers import PreTrainedTokenizerFast

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
    info = get_kind(kind, where=f"'{where}'")
    if info.layout is not None:
        raise UserError(f"'{where}' holds a '{kind}' checkpoint: export it in its release's layout with "
                        f"`paradistill export {where} --to DIR --format {info.layout}`")
    if info.export_as is None:
        what = ("an ADJUST sampler, which has no standalone HF form (it sits on a frozen base): export its base model"
                if info.family == "sampler" else f"a '{kind}' checkpoint, which has no standalone HF form: export")
        raise UserError(f"'{where}' holds {what} instead, or one of the kinds {', '.join(EXPORTABLE_KINDS)}")


def export_hf(checkpoint: str | Path, out_dir: str | Path, use_ema: bool = True) -> Path:
    """Write `out_dir`: config.json (with auto_map), modeling_paradistill.py (self-contained), model.safetensors,
    the tokenizer. Loads with `AutoModelForMaskedLM` (diffusion kinds) / `AutoModelForCausalLM` (AR)
    `.from_pretrained(out_dir, trust_remote_code=True)` without paradistill, and with `ParadistillModel`
    after `register()` with it. `checkpoint`: any reference `paradistill.loading` takes (runs, hf:ORG/NAME, ...)."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--to '{out}' exists and is not empty: choose a new directory")
    loaded = load(checkpoint, use_ema=use_ema)
    _check_kind(loaded.kind, str(checkpoint))
    kind = get_kind(loaded.kind)
    tok = loaded.tokenizer
    ids = {} if tok is None else dict(bos_token_id=tok.bos_id, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id,
                                      mask_token_id=tok.mask_id)
    config = ParadistillConfig(paradistill_kind=loaded.kind, backbone=asdict(loaded.model.cfg),
                               method=loaded.method, paradistill_family=kind.family, paradistill_block=kind.block,
                               paradistill_noise_conditioned=kind.noise_conditioned,
                               architectures=["ParadistillModel"], **ids)
    config.auto_map = auto_map(kind.export_as)
    model = ParadistillModel(config)
    model.backbone.load_state_dict(loaded.model.state_dict())
    final, out = out, _temporary_sibling(out)  # written aside, renamed into place when complete
    try:
        model.save_pretrained(str(out))
        (out / f"{MODULE_NAME}.py").write_text(modeling_source())
        if tok is not None:
            tok.save(out / TOKENIZER_DIR)
            fast = hf_tokenizer(tok)
            if fast is not None:
                fast.save_pretrained(str(out))
        (out / "paradistill.json").write_text(json.dumps({"source": str(checkpoint), "kind": loaded.kind,
                                                          "weights": "ema" if use_ema else "raw"}, indent=2))
        if final.exists():
            final.rmdir()  # empty (checked above)
        os.replace(out, final)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return final


def _temporary_sibling(out: Path) -> Path:
    writable_location(out, "--to")
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    return out.absolute().with_name(f".{out.absolute().name}.tmp-{uuid.uuid4().hex[:8]}")


def import_hf(src_dir: str | Path, out_ckpt: str | Path) -> Path:
    """Convert an exported directory back into a paradistill checkpoint (weights bit-identical)."""
    src = Path(src_dir)
    read_hf_config(src)
    loaded = load(src, format="paradistill-export")
    if loaded.tokenizer.vocab_size != loaded.model.cfg.vocab_size:
        raise UserError(f"tokenizer in '{src}' has {loaded.tokenizer.vocab_size} ids but the model "
                        f"{loaded.model.cfg.vocab_size}: export again with `paradistill export`")
    return save_checkpoint(Path(out_ckpt), loaded.model, loaded.kind, loaded.tokenizer, loaded.method)
