"""Sampling + evaluation stages of `paradistill quickstart`, and the side-by-side speed stage.

Each setting is sampled with `generation.generate` (the code users run) and scored with
`eval.evaluate.evaluate_samples`: exact Gen PPL under the built-in generator (or judge Gen PPL under the AR
teacher on other corpora), entropy next to it, NFE and seconds per sample; ADJUST rows also get MAUVE against
the one-token-per-pass samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..api import load
from ..eval.bench import median_time
from ..eval.evaluate import EvalConfig, evaluate_samples, write_outputs
from ..generation import generate
from ..io import atomic_write_jsonl
from .report import AR_ROW, TARGET_ROWS


def settings_for(model: str, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """The sampling settings evaluated for one trained model."""
    plan, inputs = ctx["plan"], ctx["inputs"]
    length = plan["seq_len"]
    if model == "ar":
        return [{"label": AR_ROW, "run": inputs["ar"]["run"], "sampler": "ar", "steps": length}]
    if model == "mdlm":  # + one token per pass (T = L passes): the sampler to use once T >= L
        return [{"label": f"MDLM T={t}", "run": inputs["mdlm"]["run"], "sampler": "ancestral", "steps": t}
                for t in plan["mdlm_steps"]] + [{"label": "MDLM T=L (first-hitting)", "run": inputs["mdlm"]["run"],
                                                 "sampler": "first-hitting", "steps": length}]
    if model == "gd":
        return [{"label": f"GD-MDLM T={t}", "run": inputs["gd"]["run"], "sampler": "ancestral", "steps": t}
                for t in plan["gd_steps"]]
    if model == "bd3lm":
        b = plan["block_size"]
        return [{"label": f"BD3-LM B={b} T={t}/block", "run": inputs["bd3lm"]["run"], "sampler": "ancestral",
                 "steps": t} for t in plan["bd3_steps_per_block"]] + [  # one token per pass: BD3-LM's own default
            {"label": f"BD3-LM B={b} T={b}/block (first-hitting)", "run": inputs["bd3lm"]["run"],
             "sampler": "first-hitting", "steps": b}]
    if model == "sdtt":
        return [{"label": f"SDTT round {r['round']} T={r['student_steps']}", "run": r["checkpoint"],
                 "sampler": "ancestral", "steps": r["student_steps"]} for r in inputs["sdtt"]["rounds"]]
    if model == "adjust":
        base, sampler = inputs["mdlm"]["run"], inputs["adjust"]["run"]
        rows = [{"label": "sequential (K=1)", "run": base, "sampler": "adjust", "steps": 1,
                 "options": {"tokens_per_pass": 1, "mode": "marginal", "adjust_checkpoint": sampler},
                 "reference": True}]
        for k in plan["adjust_k"]:
            for mode in ("marginal", "adjust"):
                rows.append({"label": f"{'ADJUST' if mode == 'adjust' else 'marginal'} K={k}", "run": base,
                             "sampler": "adjust", "steps": k,
                             "options": {"tokens_per_pass": k, "mode": mode, "adjust_checkpoint": sampler}})
        return rows
    raise ValueError(model)


def _records(loaded, result, setting) -> list[dict[str, Any]]:
    tok = loaded.tokenizer
    out = []
    for i, (row, (nfe, sec)) in enumerate(zip(result.tokens.tolist(), result.per_sample())):
        out.append({"text": tok.decode(row), "tokens": row, "nfe": nfe, "seconds": sec, "kind": loaded.kind,
                    "checkpoint": str(loaded.path), "sampler": setting["sampler"], "steps": setting["steps"],
                    "length": len(row), "_line": i + 1})
    return out


def evaluate_setting(setting: dict[str, Any], ctx: dict[str, Any], reference: str | None = None) -> dict[str, Any]:
    plan = ctx["plan"]
    folder = Path(ctx["out"]) / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    slug = setting["label"].lower().replace(" ", "_").replace("/", "-").replace("(", "").replace(")", "").replace("=", "")
    loaded = load(setting["run"])
    checked = setting["label"] == AR_ROW or setting["label"] in dict(TARGET_ROWS)
    num = plan.get("check_samples", plan["num_samples"]) if checked else plan["num_samples"]
    result = generate(loaded, num, sampler=setting["sampler"], steps=setting["steps"],
                      batch_size=plan["num_samples"], seed=ctx["seed"], progress=False, **setting.get("options", {}))
    records = _records(loaded, result, setting)
    samples = folder / f"{slug}.samples.jsonl"
    atomic_write_jsonl(samples, ({k: v for k, v in r.items() if not k.startswith("_")} for r in records))
    metrics = "exact,entropy,distinct" if plan["builtin"] else "gen_ppl,entropy,distinct"
    if reference:
        metrics += ",mauve"
    cfg = EvalConfig(metrics=metrics, judge=None if plan["builtin"] else ctx["inputs"]["ar"]["run"],
                     reference=reference, label=setting["label"], seed=ctx["seed"])
    res = evaluate_samples(records, cfg, source=str(samples), loaded=loaded, progress=False)
    res["method"] = setting["label"].split(" ")[0]
    res["nfe_full"] = res["nfe_mean"]
    extra = result.info.get("batch_extra")
    if extra and extra[0].get("sampler_passes") is not None:
        res["sampler_passes"] = sum(e["sampler_passes"] for e in extra) / len(extra)
    write_outputs(res, folder / f"{slug}.json")
    return {"label": setting["label"], "eval": str(folder / f"{slug}.json"), "samples": str(samples),
            **{k: res.get(k) for k in ("exact_ppl", "gen_ppl", "entropy", "nfe_mean", "seconds_per_sample",
                                        "tokens_per_second", "sampler_passes")},
            "mauve": (res.get("mauve") or {}).get("mauve"),
            "exact_nll_se": (res.get("exact") or {}).get("nll_se"),
            "slips": (res.get("exact") or {}).get("violations_per_sample")}


def stage_eval(ctx: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for model in ctx["plan"]["eval_groups"][ctx["stage"]]:
        reference = None
        for setting in settings_for(model, ctx):
            row = evaluate_setting(setting, ctx, reference)
            if setting.get("reference"):
                reference = row["samples"]  # ADJUST rows: MAUVE against the one-token-per-pass samples
            rows.append(row)
    return {"rows": rows}


def stage_speed(ctx: dict[str, Any]) -> dict[str, Any]:
    """Latency at batch 1 and throughput at the evaluation batch, each model in turn, in one process."""
    plan, inputs = ctx["plan"], ctx["inputs"]
    cases = [(AR_ROW, inputs["ar"]["run"], {"sampler": "ar", "steps": plan["seq_len"]}),
             ("MDLM T=16", inputs["mdlm"]["run"], {"sampler": "ancestral", "steps": 16}),
             ("GD-MDLM T=16", inputs["gd"]["run"], {"sampler": "ancestral", "steps": 16})]
    last = inputs["sdtt"]["rounds"][-1]
    cases.append((f"SDTT T={last['student_steps']}", last["checkpoint"],
                  {"sampler": "ancestral", "steps": last["student_steps"]}))
    cases.append(("ADJUST K=4", inputs["mdlm"]["run"],
                  {"sampler": "adjust", "steps": 4, "tokens_per_pass": 4, "mode": "adjust",
                   "adjust_checkpoint": inputs["adjust"]["run"]}))
    if "bd3lm" in inputs:
        cases.append((f"BD3-LM B={plan['block_size']} T=2/block", inputs["bd3lm"]["run"], {"sampler": "ancestral", "steps": 2}))
    rows = []
    for label, run, opts in cases:
        loaded = load(run)
        for batch in (1, plan["num_samples"]):
            sec, result, _ = median_time(lambda: generate(loaded, batch, batch_size=batch, seed=ctx["seed"],
                                                          progress=False, **opts), reps=3 if batch == 1 else 1, warmup=1)
            rows.append({"label": label, "batch": batch, "latency_s": sec, "nfe": result.nfe[0],
                         "tokens_per_s": batch * plan["seq_len"] / sec})
    ar = {r["batch"]: r["tokens_per_s"] for r in rows if r["label"].startswith("AR")}
    for r in rows:
        r["speedup_vs_ar"] = r["tokens_per_s"] / ar[r["batch"]]
    return {"rows": rows}
