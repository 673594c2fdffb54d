"""Model arguments of the experiments: LABEL=RUN parsing and loading with a one-line error naming the argument."""

from __future__ import annotations


def model_args(items: list[str], option: str = "--model") -> list[tuple[str, str]]:
    """LABEL=RUN arguments -> [(label, run)], refusing an ill-formed one before any work is done."""
    bad = [m for m in items if "=" not in m or not m.split("=", 1)[0] or not m.split("=", 1)[1]]
    if bad:
        raise SystemExit(f"{option} {bad[0]}: takes LABEL=RUN (e.g. mdlm=runs/base/mdlm)")
    return [tuple(m.split("=", 1)) for m in items]


def load_model(label: str, path, option: str = "--model"):
    """api.load of `LABEL=RUN`; a missing run or corrupt checkpoint ends the program with one line naming it."""
    return load_run(path, f"{option} {label}=")


def load_run(path, option: str, **kwargs):
    """api.load(path, **kwargs), ending the program with one line `OPTION PATH: reason` on a user error.
    `option` is the flag as the user typed it ('--base', or '--model LABEL=' for labelled models)."""
    from paradistill import api
    from paradistill.errors import UserError

    try:
        return api.load(path, **kwargs)
    except UserError as err:
        sep = "" if option.endswith("=") else " "
        raise SystemExit(f"{option}{sep}{path}: {err}") from None


def val_curve(run, option: str = "--run") -> list[tuple[int, float]]:
    """(step, validation loss) of every evaluation logged in a paradistill run's metrics.jsonl."""
    import json
    from pathlib import Path

    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(f"{option} {run}: no metrics.jsonl: not a training run directory of paradistill")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["step"], r["val_loss"]) for r in rows if r.get("kind") == "val"]
