"""The registry of checkpoint formats: each format says whether it recognises a local path and how to load it.

Formats register in priority order (most specific first); `detect_format(path)` returns the first whose
`detect` accepts the path. A path nobody recognises is a UserError that lists what was found there (files,
config.json keys, tensor names) and every supported format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from .state import tensor_names


@dataclass(frozen=True)
class CheckpointFormat:
    name: str
    detect: Callable[[Path], bool]  # cheap: reads file names, config.json, tensor names (no weights)
    load: Callable[..., Any]  # load(path, request: LoadRequest) -> LoadedCheckpoint
    description: str


FORMATS: list[CheckpointFormat] = []


def register_format(fmt: CheckpointFormat, *, before: str | None = None) -> CheckpointFormat:
    """Add a format (at the end, or just before the format named `before`); re-registering a name replaces it."""
    existing = [i for i, f in enumerate(FORMATS) if f.name == fmt.name]
    if existing:
        FORMATS[existing[0]] = fmt
        return fmt
    names = [f.name for f in FORMATS]
    FORMATS.insert(names.index(before) if before in names else len(FORMATS), fmt)
    return fmt


def get_format(name: str) -> CheckpointFormat:
    for f in FORMATS:
        if f.name == name:
            return f
    raise UserError(f"unknown checkpoint format '{name}': choose one of {[f.name for f in FORMATS]}")


def _found_summary(path: Path) -> str:
    """What is at `path`, for an error message: files, config.json keys, a few tensor names."""
    if not path.exists():
        return "nothing (the path does not exist)"
    parts = []
    if path.is_dir():
        files = sorted(p.name for p in path.iterdir())
        parts.append(f"files {files[:12]}{' ...' if len(files) > 12 else ''}")
        cfg = path / "config.json"
        if cfg.is_file():
            try:
                keys = sorted(json.loads(cfg.read_text()))
            except (ValueError, AttributeError, TypeError):
                keys = ["<unreadable>"]
            parts.append(f"config.json keys {keys[:12]}")
    names = tensor_names(path)
    if names:
        parts.append(f"tensors {sorted(names)[:6]}")
    return "; ".join(parts) or "no files"


def detect_format(path: Path) -> CheckpointFormat:
    for fmt in FORMATS:
        if fmt.detect(path):
            return fmt
    supported = ", ".join(f.name for f in FORMATS)
    raise UserError(f"'{path}' is not a paradistill checkpoint nor in another known format (found {_found_summary(path)}); "
                    f"supported formats: "
                    f"{supported} — pass a run/checkpoint directory, a Hugging Face model directory or hf:ORG/NAME")


def describe_formats() -> list[tuple[str, str]]:
    return [(f.name, f.description) for f in FORMATS]
