"""Training and distillation stages of `paradistill quickstart`. Each is a top-level function
`stage(ctx) -> dict` run in a worker process (see pipeline.py); ctx holds the run settings, `out`, and the
outputs of the stages it depends on under `inputs`. Every stage resumes its own run directory if it was
interrupted, so a re-run continues inside a stage too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..api import distill_adjust, distill_gumbel, distill_sdtt, load_recipe, prepare, train_model


def _recipe(ctx: dict[str, Any], extra: list[str] | None = None):
    return load_recipe(ctx["recipe"], list(ctx["overrides"]) + list(extra or []))


def _train_overrides(steps: int, ctx: dict[str, Any]) -> list[str]:
    every = max(50, steps // 3)
    return [f"train.max_steps={steps}", f"train.eval_every={every}", f"train.checkpoint_every={every}",
            f"train.seed={ctx['seed']}", "train.log_every=10"]


def stage_data(ctx: dict[str, Any]) -> dict[str, Any]:
    data = prepare(_recipe(ctx), progress=False)
    return {"directory": str(data.directory), "train_rows": int(len(data.train)), "val_rows": int(len(data.val)),
            "vocab_size": int(data.tokenizer.vocab_size), "seq_len": int(data.seq_len)}


def _train_base(kind: str, ctx: dict[str, Any], steps: int, extra: list[str] | None = None) -> dict[str, Any]:
    out = Path(ctx["out"]) / "models" / kind
    recipe = _recipe(ctx, _train_overrides(steps, ctx) + list(extra or []))
    result = train_model(kind, recipe, out, resume=True, progress=False)
    return {"run": str(out), "checkpoint": str(result.checkpoint), "steps": result.steps, "val_loss": result.last_val,
            "seconds": result.seconds}


def _shipped(kind: str, ctx: dict[str, Any]) -> dict[str, Any] | None:
    """The shipped base for `kind` (plan['bases']), as a checkpoint path; None when this run trains its own."""
    spec = (ctx["plan"].get("bases") or {}).get(kind)
    if not spec:
        return None
    import json

    from ..bases import resolve

    path = resolve(spec)
    base = json.loads((path / "config.json").read_text()).get("base", {})
    return {"run": str(path), "checkpoint": str(path), "builtin": spec, "steps": base.get("step"),
            "val_loss": base.get("val_loss"), "seconds": 0.0}


def stage_ar(ctx: dict[str, Any]) -> dict[str, Any]:
    return _shipped("ar", ctx) or _train_base("ar", ctx, ctx["plan"]["ar_steps"])


def stage_mdlm(ctx: dict[str, Any]) -> dict[str, Any]:
    return _shipped("mdlm", ctx) or _train_base("mdlm", ctx, ctx["plan"]["base_steps"])


def stage_bd3lm(ctx: dict[str, Any]) -> dict[str, Any]:
    return _shipped("bd3lm", ctx) or _train_base("bd3lm", ctx, ctx["plan"]["bd3_steps"],
                                                 [f"bd3lm.block_size={ctx['plan']['block_size']}"])


def stage_gd(ctx: dict[str, Any]) -> dict[str, Any]:
    """Gumbel-distil an MDLM student from the trained AR teacher, same optimizer steps as the MDLM baseline."""
    out = Path(ctx["out"]) / "models" / "gd-mdlm"
    recipe = _recipe(ctx, _train_overrides(ctx["plan"]["base_steps"], ctx) + list(ctx["plan"].get("gd_overrides", [])))
    teacher = ctx["inputs"]["ar"]["run"] if ctx["plan"]["gd_teacher"] == "ar" else ctx["plan"]["gd_teacher"]
    # with the shipped bases the student starts from the MDLM base (its noise pathway starts at zero)
    init = ctx["inputs"]["mdlm"]["run"] if ctx["plan"].get("bases") else None
    result = distill_gumbel(teacher, "mdlm", recipe, out, init=init, resume=True, progress=False)
    return {"run": str(out), "checkpoint": str(result.checkpoint), "steps": result.steps, "teacher": teacher,
            "val_loss": result.last_val, "seconds": result.seconds}


def stage_sdtt(ctx: dict[str, Any]) -> dict[str, Any]:
    """SDTT rounds on the trained MDLM: from_steps -> ... -> to_steps."""
    plan = ctx["plan"]
    recipe = _recipe(ctx, [f"sdtt.from_steps={plan['sdtt_from']}", f"sdtt.to_steps={plan['sdtt_to']}",
                           f"sdtt.steps_per_round={plan['sdtt_steps_per_round']}", f"train.seed={ctx['seed']}",
                           "train.log_every=10"])
    out = Path(ctx["out"]) / "models" / "sdtt"
    rounds = distill_sdtt(ctx["inputs"]["mdlm"]["run"], recipe, out, resume=True, progress=False)
    return {"run": str(out), "rounds": [{"round": r.round, "teacher_steps": r.teacher_steps,
                                         "student_steps": r.student_steps, "checkpoint": str(r.checkpoint),
                                         "val": r.last_val} for r in rounds]}


def stage_adjust(ctx: dict[str, Any]) -> dict[str, Any]:
    """Trajectories of the frozen MDLM, then an ADJUST sampler layer on top of it."""
    plan = ctx["plan"]
    recipe = _recipe(ctx, [f"adjust.trajectories={plan['adjust_trajectories']}", f"adjust.steps={plan['adjust_steps']}",
                           f"train.seed={ctx['seed']}", "train.log_every=10"])
    out = Path(ctx["out"]) / "models" / "adjust"
    result = distill_adjust(ctx["inputs"]["mdlm"]["run"], recipe, out, resume=True, progress=False)
    return {"run": str(out), "checkpoint": str(result.checkpoint), "steps": result.steps, "val_kl": result.last_val,
            "seconds": result.seconds}
