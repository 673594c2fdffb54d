"""Hugging Face causal LMs (teachers and judges, e.g. GPT-2): a save_pretrained directory or hub snapshot whose
config names a causal-LM architecture. Loaded through models/hf.py as kind 'hf-causal'."""

from __future__ import annotations

from pathlib import Path

from ..checkpoint import LoadedCheckpoint
from ..data.tokenizers import HFTokenizer
from ..models.hf import HFCausalLM
from .convert import LoadRequest
from .registry import CheckpointFormat
from .state import read_json

CAUSAL_SUFFIXES = ("forcausallm", "lmheadmodel")


def detect_hf_causal(path: Path) -> bool:
    if not path.is_dir():
        return False
    try:
        cfg = read_json(path)
    except Exception:  # noqa: BLE001
        return False
    archs = [str(a).lower() for a in cfg.get("architectures") or []]
    return "model_type" in cfg and "kind" not in cfg and any(a.endswith(CAUSAL_SUFFIXES) for a in archs)


def load_hf_causal(path: Path, request: LoadRequest):
    lm = HFCausalLM(path, request.device)
    tokenizer = None
    if any((path / f).is_file() for f in ("tokenizer.json", "vocab.json", "tokenizer_config.json")):
        tokenizer = HFTokenizer(path)
    config = {"kind": "hf-causal", "model": lm.model.config.to_dict(), "method": {"source": request.ref}}
    return LoadedCheckpoint(path, "hf-causal", lm, tokenizer, config)


FORMATS = (CheckpointFormat("hf-causal-lm", detect_hf_causal, load_hf_causal,
                            "Hugging Face causal LM, e.g. GPT-2 (teachers and judges)"),)
