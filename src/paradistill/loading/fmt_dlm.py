"""LLaDA and Dream in their published layout (a hub snapshot or a local download, or a model trained here and
written with `export --format llada|dream`): read by models/official.py into paradistill's own architecture,
kind 'llada' / 'dream' (no conversion copy: the published shards are read directly)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..models.official import detect_format, load_official
from .convert import LoadRequest
from .registry import CheckpointFormat


def _detect(arch: str):
    def detect(path: Path) -> bool:
        if not path.is_dir():
            return False
        try:
            return detect_format(path) == arch
        except UserError:  # a causal LM: the hf-causal-lm format's
            return False
    return detect


def _load(arch: str):
    def load(path: Path, request: LoadRequest):
        return load_official(path, arch, dtype=request.dtype or "auto", device=request.device)
    return load


FORMATS = (CheckpointFormat("llada", _detect("llada"), _load("llada"),
                            "LLaDA (GSAI-ML/LLaDA-8B-Base / -Instruct layout: sharded safetensors + config.json)"),
           CheckpointFormat("dream", _detect("dream"), _load("dream"),
                            "Dream (Dream-org/Dream-v0-Base-7B / -Instruct-7B layout)"))
