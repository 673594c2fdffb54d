"""What every foreign format shares: the load request, the tokenizer of a DiT checkpoint, and the conversion
cache (a converted model is written once as a paradistill checkpoint, keyed by the hash of its source files)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..checkpoint import save_checkpoint
from ..data.tokenizers import BPETokenizer, HFTokenizer, Tokenizer, build_tokenizer, load_tokenizer
from ..diffusion.objectives import DiffusionConfig
from ..errors import UserError
from ..loader import load_checkpoint
from ..models.transformer import Transformer
from .dit import convert, ema_state, guess_heads, strip
from .refs import converted_dir, resolve
from .state import hash_files, read_json, read_tensors, source_files

CONVERTER_VERSION = 1
GPT2_HUB = "hf:openai-community/gpt2"


@dataclass
class LoadRequest:
    ref: str
    use_ema: bool = True
    device: Any = "cpu"
    dtype: Any = None
    expect_kinds: tuple[str, ...] | None = None
    tokenizer: Any = None  # a tokenizer spec (str) or object; default: the format's own
    options: dict[str, Any] = field(default_factory=dict)  # n_heads, block_size, inject_mode, kind, cache


def dit_tokenizer(path: Path, request: LoadRequest, vocab: int):
    """The tokenizer of a DiT checkpoint: the request's, a paradistill tokenizer/ folder or GPT-2 files beside the
    weights, else GPT-2 from the hub cache; GPT-2 + MASK must match the model's vocabulary."""

    folder = path if path.is_dir() else path.parent
    tok = request.tokenizer
    if isinstance(tok, Tokenizer):
        pass
    elif tok:
        tok = build_tokenizer(str(tok))
    elif (folder / "tokenizer").is_dir():
        tok = load_tokenizer(folder / "tokenizer")
    elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        tok = BPETokenizer(folder)
    else:
        try:
            snapshot = resolve(GPT2_HUB)
            # the HF tokenizer when the snapshot has its files: same fingerprint as a recipe's hf:gpt2 data
            tok = HFTokenizer(snapshot) if (snapshot / "tokenizer_config.json").is_file() else BPETokenizer(snapshot)
        except UserError as e:
            raise UserError(f"'{request.ref}' ships no tokenizer and GPT-2's is unavailable ({e}); pass "
                            "tokenizer='gpt2:DIR' (a folder with GPT-2's vocab.json and merges.txt)") from None
    if tok.vocab_size != vocab:
        raise UserError(f"tokenizer {tok!r} has {tok.vocab_size} ids but '{request.ref}' has {vocab} outputs: pass "
                        "the model's tokenizer (the MDLM family: GPT-2 + MASK = 50258)")
    if tok.mask_id != vocab - 1:
        raise UserError(f"tokenizer {tok!r} puts MASK at {tok.mask_id}, but '{request.ref}' uses the last id "
                        f"{vocab - 1}: pass a GPT-2-style tokenizer (MASK appended)")
    return tok


def _cache_key(fmt: str, path: Path, request: LoadRequest) -> str:
    opts = {k: v for k, v in sorted(request.options.items()) if k != "cache"}
    tok = request.tokenizer if isinstance(request.tokenizer, (str, type(None))) else request.tokenizer.fingerprint()
    extra = json.dumps([fmt, CONVERTER_VERSION, opts, request.use_ema, tok], default=str)
    return hash_files(source_files(path), extra)


def load_converted(fmt: str, path: Path, request: LoadRequest, build: Callable[[], tuple]):
    """`build()` -> (kind, ModelConfig, state dict, tokenizer, method). Runs once per source (cached), then the
    checkpoint is loaded like any paradistill checkpoint."""

    use_cache = request.options.get("cache", True)
    target = converted_dir(_cache_key(fmt, path, request))
    if not (use_cache and (target / "config.json").is_file() and (target / "model.safetensors").is_file()):
        kind, cfg, weights, tokenizer, method = build()
        with torch.device("meta"):
            model = Transformer(cfg)
        model.load_state_dict(weights, strict=True, assign=True)
        method = {**method, "source": request.ref, "source_format": fmt}
        save_checkpoint(target, model, kind, tokenizer, method)
    loaded = load_checkpoint(target, use_ema=False, device=request.device)
    loaded.config.setdefault("method", {})["source"] = request.ref  # the same bytes may come by another reference
    return loaded


def plain(obj: Any) -> Any:
    """A config as plain dicts / lists (OmegaConf containers in Lightning checkpoints included)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(obj, (DictConfig, ListConfig)):
            return OmegaConf.to_container(obj, resolve=False)
    except ImportError:
        pass
    if isinstance(obj, dict) or hasattr(obj, "items"):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def dit_settings(config: dict[str, Any], extras: dict[str, Any]) -> dict[str, Any]:
    """The fields a DiT conversion needs, from a flat hub config.json, a Hydra dump (model.*, algo.*, noise.*)
    or a Lightning checkpoint's hyper_parameters.config."""
    hp = plain(extras.get("hyper_parameters") or {})
    nested = hp.get("config", hp) if isinstance(hp, dict) else {}
    sources = [config, config.get("model") or {}, config.get("algo") or {}, nested, nested.get("model") or {},
               nested.get("algo") or {}]

    def pick(*names, default=None):
        for src in sources:
            if isinstance(src, dict):
                for n in names:
                    if src.get(n) is not None:
                        return src[n]
        return default

    noise = config.get("noise") or nested.get("noise") or {}
    return {"n_heads": pick("n_heads"), "length": pick("model_length", "length"),
            "time_conditioning": bool(pick("time_conditioning", default=False)),
            "block_size": pick("block_size"), "inject_mode": pick("gumbel_inject_mode", "inject_mode"),
            "cross_attn": pick("cross_attn"), "dropout": pick("dropout"), "eps": (noise.get("eps") if isinstance(noise, dict) else None) or 1e-3}


def build_dit(path: Path, request: LoadRequest, kind: str | Callable[[dict], str], method_for: Callable[[dict], dict]):
    """A `build` function for `load_converted`: read, (EMA), convert a DiT checkpoint of `kind` (or of the kind
    `kind(settings)` names)."""

    def build():

        state, extras = read_tensors(path)
        settings = dit_settings(read_json(path), extras)
        settings.update({k: v for k, v in request.options.items() if k in settings and v is not None})
        if request.use_ema and "ema" in extras:
            state = ema_state(state, extras["ema"], str(path))
        dim = strip(state)["vocab_embed.embedding"].shape[1]
        heads = guess_heads(dim, request.ref, settings["n_heads"])
        length = int(settings["length"] or 1024)
        cfg, weights = convert(state, heads, time_conditioning=settings["time_conditioning"], max_len=length,
                               where=request.ref, inject_mode=settings["inject_mode"] or "replace",
                               time_eps=float(settings["eps"]), dropout=float(settings["dropout"] or 0.0))
        tokenizer = dit_tokenizer(path, request, cfg.vocab_size)
        method = {"seq_len": length, "data_mode": "wrap-mdlm", "keep_bos": False,
                  "diffusion": asdict(DiffusionConfig(eps=float(settings["eps"]), keep_bos=False)),
                  **method_for(settings)}
        return kind(settings) if callable(kind) else kind, cfg, weights, tokenizer, method

    return build
