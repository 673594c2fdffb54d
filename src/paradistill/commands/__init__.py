"""CLI command groups (each: add_parser(subparsers), run(args))."""

from __future__ import annotations

import importlib


def register(sub, module_name: str) -> None:
    """Add `paradistill.commands.<module_name>`'s parser to `sub`; a module missing from this build is skipped."""
    try:
        module = importlib.import_module(f"paradistill.commands.{module_name}")
    except ModuleNotFoundError as e:
        if e.name == f"paradistill.commands.{module_name}":
            return
        raise
    module.add_parser(sub)
