"""Resolving a teacher reference (`--teacher`) to a `distill.teachers.Teacher`."""

from __future__ import annotations

import json
from pathlib import Path

from ..distill.teachers import GRAMMAR_SPECS, ARCheckpointTeacher, GrammarTeacher, HFTeacher, Teacher
from ..errors import UserError
from ..loader import load_checkpoint
from ..loading import resolve
from ..loading.refs import split_ref


def load_teacher(spec: str, device="cpu") -> Teacher:
    """'builtin-generator' | 'hf:DIR' | a paradistill run or checkpoint directory of kind 'ar' | another checkpoint
    reference such as builtin:ar (a base shipped in the package)."""
    spec = str(spec).strip()
    if spec in GRAMMAR_SPECS:
        return GrammarTeacher()
    if spec.startswith("hf:"):  # a local directory or a hub id, hub cache first (loading/refs.py)
        teacher = HFTeacher(resolve(spec), device)
        teacher.name = spec
        return teacher
    path = resolve(spec) if split_ref(spec)[0] else Path(spec)  # builtin:ar and other registered schemes
    if not path.exists():
        raise UserError(f"teacher '{spec}' does not exist: pass builtin-generator, hf:DIR (a Hugging Face causal "
                        "LM saved with save_pretrained), builtin:ar or a paradistill AR run directory")
    if _is_hf_directory(path):
        return HFTeacher(path, device)  # a Hugging Face directory passed without the hf: prefix
    return ARCheckpointTeacher(load_checkpoint(path, device=device), device)


def _is_hf_directory(path: Path) -> bool:
    """A save_pretrained() directory: config.json without paradistill's 'kind'."""
    cfg = path / "config.json"
    if not cfg.is_file() or (path / "latest.json").is_file():
        return False
    try:
        return "kind" not in json.loads(cfg.read_text())
    except (json.JSONDecodeError, OSError):
        return False
