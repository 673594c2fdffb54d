"""Loading a paradistill checkpoint: the format (`checkpoint.py`) knows no kinds; this layer builds the model of
the kind its config names, through one table keyed by the kind's family (`kinds.py`):

- "ar" / "diffusion": one `models.transformer.Transformer` from the saved `ModelConfig` and weights;
- "sampler" (ADJUST): the frozen base named in the checkpoint (loaded by this same function and checked by
  fingerprint) plus the sampler layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from .checkpoint import (LoadedCheckpoint, MethodRecord, check_architecture_keys, load_weights, read_config,
                         resolve_checkpoint)
from .config import from_dict
from .data.tokenizers import load_tokenizer
from .distill.adjust import AdjustModel, SamplerConfig, SamplerLayer
from .distill.adjust_adapters import ParadistillAdapter
from .errors import UserError
from .kinds import get_kind
from .models.dlm import DiffusionLM, DLMConfig
from .models.official import detect_format, load_official
from .models.transformer import ModelConfig, Transformer

# the model class of each kind whose backbone is not the default Transformer
MODEL_CLASSES: dict[str, tuple[type, type]] = {"llada": (DLMConfig, DiffusionLM), "dream": (DLMConfig, DiffusionLM)}


def weights_file(ckpt: Path, use_ema: bool) -> Path:
    """The EMA weights when asked for and present, else the raw ones."""
    return ckpt / ("ema.safetensors" if use_ema and (ckpt / "ema.safetensors").is_file() else "model.safetensors")


def _load_transformer(ckpt: Path, config: dict, use_ema: bool, device) -> LoadedCheckpoint:
    check_architecture_keys(config["model"], ckpt)  # a missing key must not fall back to a dataclass default
    cfg_cls, model_cls = MODEL_CLASSES.get(config["kind"], (ModelConfig, Transformer))
    model_cfg = from_dict(cfg_cls, config["model"], where=f"{ckpt}/config.json:model")
    model = model_cls(model_cfg)
    file = weights_file(ckpt, use_ema)
    missing, unexpected = model.load_state_dict(load_weights(file), strict=False)
    missing = [k for k in missing if not (k == "head.weight" and model_cfg.tie_weights)]
    if missing or unexpected:
        raise UserError(f"weights in '{file}' do not fit the model in its config.json "
                        f"(missing {missing[:5]}, unexpected {unexpected[:5]}): the checkpoint is inconsistent")
    tokenizer = None
    if (ckpt / "tokenizer").is_dir():
        tokenizer = load_tokenizer(ckpt / "tokenizer")
        if tokenizer.vocab_size != model_cfg.vocab_size:
            raise UserError(f"checkpoint vocab {model_cfg.vocab_size} != tokenizer vocab {tokenizer.vocab_size} "
                            f"in '{ckpt}': pass the tokenizer the model was trained with")
    model.to(device).eval()
    return LoadedCheckpoint(ckpt, config["kind"], model, tokenizer, config)


def _load_sampler(ckpt: Path, config: dict, use_ema: bool, device) -> LoadedCheckpoint:
    """An ADJUST checkpoint: its base from method['base'] (checked by fingerprint) plus the sampler layer."""
    record = from_dict(MethodRecord, config.get("method", {}), where=f"{ckpt}/config.json: method")
    base_path = Path(record.base or "")
    if not base_path.exists():
        raise UserError(f"ADJUST checkpoint '{ckpt}' sits on base '{base_path}', which does not exist: restore the "
                        "base checkpoint (or retrain the sampler with `paradistill distill adjust --base CKPT`)")
    base = load_checkpoint(base_path, use_ema=True, device=device)
    adapter = ParadistillAdapter.from_loaded(base)
    if adapter.fingerprint() != record.base_fingerprint:
        raise UserError(f"base '{base_path}' changed since ADJUST checkpoint '{ckpt}' was trained (fingerprint "
                        f"{adapter.fingerprint()} vs {record.base_fingerprint}): retrain the sampler")
    sampler = SamplerLayer(from_dict(SamplerConfig, config["model"], where=f"{ckpt}/config.json:model"))
    sampler.load_state_dict(load_weights(weights_file(ckpt, use_ema)))
    sampler.to(device).eval()
    return LoadedCheckpoint(ckpt, config["kind"], AdjustModel(base.model, sampler), base.tokenizer, config)


BUILDERS: dict[str, Callable[[Path, dict, bool, object], LoadedCheckpoint]] = {
    "ar": _load_transformer, "diffusion": _load_transformer, "sampler": _load_sampler}


def load_checkpoint(path: str | Path, use_ema: bool = True, device: str | torch.device = "cpu",
                    expect_kinds: tuple[str, ...] | None = None, dtype: str = "auto") -> LoadedCheckpoint:
    """Model + tokenizer of a checkpoint or run directory, or of a published LLaDA / Dream directory (their
    layout, models/official.py). With `use_ema`, the EMA weights when present."""
    official = detect_format(path) if Path(path).is_dir() else None
    if official is not None:
        if expect_kinds is not None and official not in expect_kinds:
            raise UserError(f"'{path}' holds a published {official} model, but this command needs one of "
                            f"{list(expect_kinds)}")
        return load_official(path, official, dtype=dtype, device=device)
    ckpt = resolve_checkpoint(path)
    config = read_config(ckpt)
    kind = get_kind(config["kind"], where=f"checkpoint '{ckpt}'")
    if expect_kinds is not None and kind.name not in expect_kinds:
        raise UserError(f"checkpoint '{ckpt}' holds a '{kind.name}' model, but this command needs one of "
                        f"{list(expect_kinds)}")
    return BUILDERS[kind.family](ckpt, config, use_ema, device)
