"""paradistill's own formats: run / checkpoint directories (loader.py) and `paradistill export`
directories (config.json with model_type 'paradistill' + model.safetensors with `backbone.*` tensors)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..checkpoint import LoadedCheckpoint
from ..config import from_dict
from ..data.tokenizers import HFTokenizer, load_tokenizer
from ..errors import UserError
from ..loader import load_checkpoint
from ..models.transformer import ModelConfig, Transformer
from .convert import LoadRequest
from .registry import CheckpointFormat

EXPORT_TYPE = "paradistill"
EXPORT_TOKENIZER = "paradistill_tokenizer"


def detect_run(path: Path) -> bool:
    if not path.is_dir():
        return False
    if (path / "latest.json").is_file() or (path / "checkpoints").is_dir():
        return True
    cfg = path / "config.json"
    if not (cfg.is_file() and (path / "model.safetensors").is_file()):
        return False
    try:
        data = json.loads(cfg.read_text())
    except ValueError:
        return True  # ours but corrupt: load_checkpoint names the problem
    return isinstance(data, dict) and "kind" in data and "model" in data


def load_run(path: Path, request: LoadRequest):
    return load_checkpoint(path, use_ema=request.use_ema, device=request.device)


def detect_export(path: Path) -> bool:
    cfg = path / "config.json"
    if not (path.is_dir() and cfg.is_file()):
        return False
    try:
        return json.loads(cfg.read_text()).get("model_type") == EXPORT_TYPE
    except (ValueError, AttributeError):
        return False


def load_export(path: Path, request: LoadRequest):
    """The backbone straight from the exported tensors (no transformers, no remote code): bit-identical."""
    config = json.loads((path / "config.json").read_text())
    cfg = from_dict(ModelConfig, config.get("backbone") or {}, where=f"{path}/config.json:backbone")
    files = sorted(path.glob("model*.safetensors"))
    if not files:
        raise UserError(f"exported directory '{path}' has no model.safetensors: export it again")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    state = {k.removeprefix("backbone."): v for k, v in state.items()}
    model = Transformer(cfg)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (k == "head.weight" and cfg.tie_weights)]
    if missing or unexpected:
        raise UserError(f"exported weights in '{path}' do not fit its config.json (missing {missing[:4]}, unexpected "
                        f"{unexpected[:4]}): export it again")
    tok_dir = path / EXPORT_TOKENIZER
    tokenizer = load_tokenizer(tok_dir) if tok_dir.is_dir() else HFTokenizer(path)
    kind = config.get("paradistill_kind", "mdlm")
    ck_config = {"kind": kind, "model": config.get("backbone"), "method": config.get("method") or {},
                 "format": "paradistill-export"}
    return LoadedCheckpoint(path, kind, model.to(request.device).eval(), tokenizer, ck_config)


FORMATS = (
    CheckpointFormat("paradistill", detect_run, load_run, "paradistill run or checkpoint directory"),
    CheckpointFormat("paradistill-export", detect_export, load_export,
                     "directory written by `paradistill export` (config.json model_type 'paradistill')"),
)
