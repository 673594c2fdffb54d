"""Reading foreign checkpoints: which weight file a path holds, its tensor names (cheaply), its tensors, the
config beside it, and the hash of its source files (the key of the conversion cache)."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ..errors import UserError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CKPT_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def weight_file(path: Path) -> Path | None:
    """The weights a path stands for: the file itself, or a directory's model.safetensors / pytorch_model.bin,
    or its only Lightning .ckpt file."""
    if path.is_file():
        return path if path.suffix == ".safetensors" or path.suffix in CKPT_SUFFIXES else None
    if not path.is_dir():
        return None
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    ckpts = sorted(p for p in path.iterdir() if p.suffix == ".ckpt")
    return ckpts[0] if len(ckpts) == 1 else None


def read_json(path: Path) -> dict[str, Any]:
    """config.json beside the weights ({} when absent or unreadable)."""
    folder = path if path.is_dir() else path.parent
    cfg = folder / "config.json"
    if not cfg.is_file():
        return {}
    try:
        data = json.loads(cfg.read_text())
    except ValueError as e:
        raise UserError(f"'{cfg}' is not valid JSON ({e}): restore the file from its source") from None
    return data if isinstance(data, dict) else {}


@lru_cache(maxsize=64)
def _names_cached(file: str, mtime: float) -> tuple[str, ...]:
    p = Path(file)
    if p.suffix == ".safetensors":
        try:
            with safe_open(file, framework="pt") as f:
                return tuple(f.keys())
        except Exception:  # noqa: BLE001 - a corrupt file is reported when it is loaded
            return ()
    try:
        return tuple(_torch_state(p)[0])
    except UserError:
        return ()


def tensor_names(path: Path) -> tuple[str, ...]:
    f = weight_file(path)
    if f is None:
        return ()
    return _names_cached(str(f), f.stat().st_mtime)


def _torch_state(file: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, extras) of a torch / Lightning file; extras holds 'ema' and 'hyper_parameters' when present."""
    try:
        # Lightning checkpoints pickle their configs: these are trusted files the user points at
        obj = torch.load(file, map_location="cpu", weights_only=False)
    except ModuleNotFoundError as e:
        raise UserError(f"'{file}' pickles objects of module '{e.name}': install it (pip install {e.name}) to read "
                        "this checkpoint") from None
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot read '{file}' as a torch checkpoint ({e}): pass a .safetensors / .ckpt file") from None
    extras: dict[str, Any] = {}
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        extras = {k: obj[k] for k in ("ema", "hyper_parameters") if k in obj}
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise UserError(f"'{file}' does not hold a state dict: pass model weights")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}, extras


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, extras) of the weights at `path`."""
    f = weight_file(path)
    if f is None:
        raise UserError(f"'{path}' holds no weights (model.safetensors, pytorch_model.bin or one .ckpt): pass the "
                        "model's directory or weights file")
    if f.suffix == ".safetensors":
        try:
            return load_file(str(f)), {}
        except Exception as e:  # noqa: BLE001
            raise UserError(f"weights file '{f}' is truncated or corrupt ({e}): download it again") from None
    return _torch_state(f)


def source_files(path: Path) -> list[Path]:
    """The files a conversion depends on: the weights and config.json."""
    f = weight_file(path)
    files = [f] if f is not None else []
    folder = path if path.is_dir() else path.parent
    if (folder / "config.json").is_file():
        files.append(folder / "config.json")
    return files


def hash_files(files: list[Path], extra: str = "") -> str:
    """sha256 over the files' contents (and `extra`, e.g. the converter version and its options)."""
    h = hashlib.sha256(extra.encode())
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()[:24]
