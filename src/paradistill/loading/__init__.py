"""Load any checkpoint by reference: paradistill runs and exports, Hugging Face causal LMs, and the published
MDLM / BD3-LM / SDTT / Gumbel Distillation checkpoints (by local path or `hf:ORG/NAME[@REVISION]`).

    from paradistill import loading
    loaded = loading.load("hf:kuleshov-group/bd3lm-owt-block_size4")   # -> LoadedCheckpoint(kind='bd3lm', ...)

`refs` resolves the reference to a local path (hub cache first); `registry.detect_format` picks the format;
foreign formats are converted once to a paradistill checkpoint under $PARADISTILL_HOME/converted/<hash>/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from . import fmt_dit, fmt_dlm, fmt_hf, fmt_paradistill
from .convert import LoadRequest
from .refs import register_scheme, resolve  # noqa: F401  (re-exported)
from .registry import FORMATS, CheckpointFormat, describe_formats, detect_format, get_format, register_format


OPTIONS = ("n_heads", "length", "time_conditioning", "block_size", "inject_mode", "cross_attn", "dropout", "eps",
           "cache")
_BUILTIN: list[CheckpointFormat] = []


def _register_builtin_formats() -> None:
    """Priority order: paradistill's own, then the most specific foreign formats, the MDLM fallback, HF LMs; formats
    registered by others before the first load keep their place after these."""
    if _BUILTIN:
        return
    _BUILTIN.extend((*fmt_paradistill.FORMATS, *fmt_dlm.FORMATS, *fmt_dit.FORMATS, *fmt_hf.FORMATS))
    first = FORMATS[0].name if FORMATS else None
    for fmt in _BUILTIN:
        register_format(fmt, before=first)


def formats() -> list[CheckpointFormat]:
    _register_builtin_formats()
    return list(FORMATS)


def load(ref: str | Path, *, use_ema: bool = True, device: Any = "cpu", dtype: Any = None,
         expect_kinds: tuple[str, ...] | None = None, tokenizer: Any = None, format: str | None = None,
         **options: Any):
    """LoadedCheckpoint (path, kind, model, tokenizer, config) for any checkpoint reference.

    options: n_heads, block_size, inject_mode ('replace'|'add'), time_conditioning, length (override what a foreign
    config says), cache=False (convert again)."""
    _register_builtin_formats()
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UserError(f"loading '{ref}': unknown option(s) {unknown}: valid options are {', '.join(OPTIONS)}")
    path = resolve(ref)
    fmt = get_format(format) if format else detect_format(path)
    request = LoadRequest(str(ref), use_ema, device, dtype, expect_kinds, tokenizer, dict(options))
    loaded = fmt.load(path, request)
    if expect_kinds is not None and loaded.kind not in expect_kinds:
        raise UserError(f"checkpoint '{ref}' holds a '{loaded.kind}' model ({fmt.name} format), but this needs one of "
                        f"{list(expect_kinds)}: pass a checkpoint of one of those kinds")
    if dtype is not None and hasattr(loaded.model, "to"):
        loaded.model.to(dtype)
    return loaded


__all__ = ["load", "resolve", "register_scheme", "register_format", "detect_format", "formats", "describe_formats",
           "CheckpointFormat", "LoadRequest"]
