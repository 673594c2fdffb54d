"""`paradistill eval RUN --tasks a,b,...`: lm-eval-harness tasks on a paradistill checkpoint, written as a JSON
(format `paradistill-tasks`) and a markdown table that `paradistill report` renders beside the generation tables.

lm-eval is imported here only inside functions: this module is importable without it, and asking for tasks
without it installed is a one-line UserError naming the extra to install.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from ..errors import UserError

FORMAT = "paradistill-tasks"


def require_lm_eval():
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise UserError("--tasks needs lm-eval-harness: pip install 'paradistill[harness]' (package lm-eval)") from None


def task_manager(include_path: str | None = None, tasks: list[str] | None = None):
    """lm-eval's TaskManager with `include_path` (a folder of task YAMLs) searched before the built-in tasks;
    when `tasks` all live in `include_path`, the built-in index (thousands of YAMLs, slow) is not built."""
    require_lm_eval()
    from lm_eval.tasks import TaskManager

    if include_path is not None:
        if not Path(include_path).is_dir():
            raise UserError(f"--task-path '{include_path}' is not a folder: pass the folder that holds the task "
                            "YAML files")
        local = TaskManager(include_path=include_path, include_defaults=False)
        if tasks and all(t in set(local.all_tasks) for t in tasks):
            return local
    return TaskManager(include_path=include_path)


def check_tasks(tasks: list[str], manager) -> None:
    known = set(manager.all_tasks)
    for t in tasks:
        if t not in known:
            close = difflib.get_close_matches(t, sorted(known), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserError(f"--tasks: lm-eval knows no task '{t}'{hint}: list them with `lm_eval ls tasks`, or pass "
                            "--task-path DIR holding its YAML")


def run_tasks(loaded, tasks: list[str], include_path: str | None = None, limit: float | None = None,
              num_fewshot: int | None = None, bootstrap_iters: int = 0, **model_args) -> dict[str, Any]:
    """Evaluate `tasks` on a loaded checkpoint; returns the result dict (see module docstring)."""
    if not tasks:
        raise UserError("--tasks is empty: name at least one lm-eval task, e.g. --tasks lambada_openai")
    manager = task_manager(include_path, tasks)
    check_tasks(tasks, manager)
    from lm_eval import simple_evaluate

    from .harness import ParadistillLM, register

    register()
    lm = ParadistillLM(loaded=loaded, **model_args)
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    out = simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=limit, num_fewshot=num_fewshot,
                          bootstrap_iters=bootstrap_iters, log_samples=False, random_seed=lm.cfg.seed,
                          numpy_random_seed=lm.cfg.seed, torch_random_seed=lm.cfg.seed,
                          fewshot_random_seed=lm.cfg.seed)
    results = {t: {k: _clean(v) for k, v in r.items()} for t, r in out["results"].items()}
    types = {t: (out.get("configs", {}).get(t) or {}).get("output_type") for t in results}
    uses_likelihood = any(ty in ("loglikelihood", "loglikelihood_rolling", "multiple_choice")
                          for ty in types.values())
    return {"format": FORMAT, "checkpoint": str(loaded.path), "kind": loaded.kind, "tasks": results,
            "output_types": types, "n_samples": {t: v.get("effective") for t, v in out.get("n-samples", {}).items()},
            "likelihood": lm.bound if uses_likelihood else None, "settings": lm.settings(),
            "limit": limit, "num_fewshot": num_fewshot}


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


def metric_rows(res: dict[str, Any]) -> list[tuple[str, str, float, float | None]]:
    """(task, metric, value, stderr) for every numeric metric of a tasks result."""
    rows = []
    for task, metrics in res["tasks"].items():
        for key, value in metrics.items():
            if key == "alias" or "_stderr" in key or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            name, _, filt = key.partition(",")
            err = metrics.get(f"{name}_stderr,{filt}") if filt else metrics.get(f"{name}_stderr")
            rows.append((task, name if filt in ("", "none") else f"{name} ({filt})", float(value),
                         err if isinstance(err, (int, float)) else None))
    return rows


def format_tasks_table(res: dict[str, Any]) -> str:
    head = (f"lm-eval tasks of `{res['checkpoint']}` ({res['kind']}); log-likelihoods: "
            f"{res.get('likelihood') or 'not used'}; generation: sampler {res['settings']['sampler']}, "
            f"{res['settings']['steps']} steps\n\n")
    lines = ["| task | metric | value | stderr |", "|---|---|---|---|"]
    for task, metric, value, err in metric_rows(res):
        lines.append(f"| {task} | {metric} | {value:.4f} | {'-' if err is None else f'{err:.4f}'} |")
    return head + "\n".join(lines) + "\n"


def write_tasks(res: dict[str, Any], json_path: str | Path) -> tuple[Path, Path]:
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json_path, json.dumps(res, indent=1, default=str))
    md = json_path.with_suffix(".md")
    atomic_write_text(md, format_tasks_table(res))
    return json_path, md
