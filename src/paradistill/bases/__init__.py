"""The base models shipped inside the package, addressed as `builtin:NAME` wherever a checkpoint is taken.

Each base is a paradistill checkpoint directory under this folder (model.safetensors, config.json, tokenizer/),
trained on the built-in story corpus with the tiny recipe by `experiments/bases/train.sh` and copied here by
`python -m experiments.bases.pack`. `manifest.json` records the sha256 and size of every file, and the base's
step count and validation loss.

    from paradistill.bases import resolve, verify
    resolve("builtin:mdlm")   # -> Path of the checkpoint directory (offline, no download)
    verify("mdlm")            # -> files whose hash differs from the manifest ([] when intact)

This module only reads files: `loading.refs` registers it as the `builtin:` scheme.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from ..errors import UserError

SCHEME = "builtin"
MANIFEST = "manifest.json"
MAX_WEIGHT_BYTES = 8 * 1024 * 1024  # each shipped model.safetensors stays under 8 MiB


def folder() -> Path:
    """The package folder holding the shipped bases."""
    return Path(str(resources.files(__name__)))


def manifest() -> dict:
    path = folder() / MANIFEST
    if not path.is_file():
        return {"bases": {}}
    return json.loads(path.read_text())


def names() -> list[str]:
    """Names of the shipped bases, without the `builtin:` prefix."""
    return sorted(manifest()["bases"])


def short_name(ref: str) -> str:
    """'builtin:mdlm' or 'mdlm' -> 'mdlm'."""
    head, sep, rest = str(ref).partition(":")
    return rest if sep and head == SCHEME else str(ref)


def resolve(ref: str) -> Path:
    """`builtin:NAME` (or NAME) -> the checkpoint directory of that shipped base; UserError listing the names."""
    name = short_name(ref)
    known = names()
    if name not in known:
        listed = ", ".join(f"{SCHEME}:{n}" for n in known) or "none (this install ships no bases)"
        raise UserError(f"unknown built-in base '{SCHEME}:{name}': choose one of {listed}")
    path = folder() / name
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise UserError(f"built-in base '{SCHEME}:{name}' is listed but its files are missing in '{path}': "
                        "reinstall paradistill")
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(ref: str) -> list[str]:
    """Files of a shipped base that are missing or whose sha256 differs from the manifest (empty: intact)."""
    name = short_name(ref)
    path = resolve(name)
    files = manifest()["bases"][name]["files"]
    return [rel for rel, rec in sorted(files.items())
            if not (path / rel).is_file() or sha256_file(path / rel) != rec["sha256"]]


def describe() -> list[str]:
    """One line per shipped base: id, kind, steps, validation loss."""
    lines = []
    for name, rec in sorted(manifest()["bases"].items()):
        val = rec.get("val_loss")
        steps = rec.get("total_steps", rec.get("step", "?"))
        lines.append(f"{SCHEME}:{name:10s} {rec.get('kind', '?'):6s} {steps} steps"
                     + (f", val loss {val:.4f}" if isinstance(val, (int, float)) else ""))
    return lines
