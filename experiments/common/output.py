"""Atomic outputs of the experiments: a JSON of {args, rows} and its markdown table beside it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_text(path, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder and os.replace (never half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path, obj, indent: int = 2) -> Path:
    return write_text(path, json.dumps(obj, indent=indent))


def write_command(out, module: str, argv: list[str], env: str = "OMP_NUM_THREADS=1", note: str = "") -> Path:
    """out/COMMAND.md: the `python -m module ARGV` line that regenerated this folder (from the repository root)."""
    cmd = f"{env} .venv/bin/python -m {module} " + " ".join(argv)
    return write_text(Path(out) / "COMMAND.md", f"Regenerate with (from the repository root{note}):\n\n    {cmd.strip()}\n")


def save(args, rows: list[dict], md: str) -> None:
    """Print the table; with --json, write {args, rows} there and the table beside it (.md)."""
    print(md)
    if args.json:
        write_json(args.json, {"args": vars(args), "rows": rows})
        write_text(Path(args.json).with_suffix(".md"), md + "\n")
