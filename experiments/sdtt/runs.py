"""The SDTT run folders the experiments read: `sdtt.json` (config and rounds) and the round-1 teacher."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.common.models import load_run


def sdtt_summary(run, option: str = "--run") -> dict:
    """RUN/sdtt.json ({config, rounds}) of a `paradistill distill sdtt` run, or a one-line exit naming `option`."""
    listing = Path(run) / "sdtt.json"
    if not listing.is_file():
        raise SystemExit(f"{option} {run}: no sdtt.json there; pass the --out folder of a finished "
                         "`paradistill distill sdtt` run")
    try:
        summary = json.loads(listing.read_text())
    except ValueError as err:
        raise SystemExit(f"{option} {run}: sdtt.json is not JSON ({err})") from None
    if not isinstance(summary, dict) or not {"config", "rounds"} <= summary.keys():
        raise SystemExit(f"{option} {run}: sdtt.json lacks 'config' or 'rounds'; rerun the SDTT distillation")
    return summary


def sdtt_config(summary: dict):
    """The run's SDTTConfig, read back through the dataclass (one place for its defaults)."""
    from paradistill.config import from_dict
    from paradistill.distill.sdtt import SDTTConfig

    return from_dict(SDTTConfig, summary["config"])


def teacher_checkpoint(path, option: str = "--teacher") -> Path:
    """The checkpoint folder of the round-1 teacher (a run folder or a checkpoint), checked by loading it once."""
    return Path(load_run(path, option).path)
