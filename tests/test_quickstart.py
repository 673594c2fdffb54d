"""The quick-start pipeline end to end at tiny sizes (slow): every stage runs, the report and plot exist,
and a re-run skips every finished stage."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

PLAN = {"ar_steps": 30, "base_steps": 30, "bd3_steps": 20, "sdtt_steps_per_round": 10, "sdtt_from": 16, "sdtt_to": 4,
        "adjust_trajectories": 32, "adjust_steps": 10, "mdlm_steps": [4, 16], "gd_steps": [4, 16],
        "bd3_steps_per_block": [2], "adjust_k": [2], "check_samples": 24}
OVERRIDES = ["model.dim=32", "model.n_layers=1", "model.n_heads=2", "data.seq_len=16", "data.num_tokens=30000",
             "train.batch_size=8", "adjust.batch_size=8"]


def test_quickstart_runs_every_stage_and_resumes(tmp_path, monkeypatch):
    from paradistill.quickstart.run import QuickstartConfig, run_quickstart

    monkeypatch.setenv("PARADISTILL_CACHE", str(tmp_path / "cache"))
    lines: list[str] = []
    cfg = QuickstartConfig(out=str(tmp_path / "qs"), budget_minutes=2, num_samples=16, plan_overrides=PLAN,
                           overrides=OVERRIDES)
    report = run_quickstart(cfg, echo=lines.append)
    text = report.read_text()
    for needle in ("AR (KV cache)", "MDLM T=4", "GD-MDLM T=16", "BD3-LM", "SDTT round", "ADJUST K=2",
                   "sequential (K=1)", "## Checks", "Speed against KV-cached AR"):
        assert needle in text, needle
    assert (tmp_path / "qs" / "pareto.png").stat().st_size > 0
    # the rows the 2x target is checked on get check_samples, the others num_samples
    evals = tmp_path / "qs" / "eval"
    for slug, n in (("ar_kv_cache", 24), ("mdlm_tl_first-hitting", 24), ("mdlm_t4", 16), ("gd-mdlm_t4", 16)):
        assert json.loads((evals / f"{slug}.json").read_text())["num_samples"] == n, slug
    assert ("16 samples per setting (24 for the rows the 2x target is checked on: AR (KV cache), MDLM T=64, "
            "MDLM T=L (first-hitting))") in text
    stages = json.loads((tmp_path / "qs" / "stages" / "eval-b.json").read_text())
    assert any(r["mauve"] is not None for r in stages["outputs"]["rows"])
    again: list[str] = []
    run_quickstart(cfg, echo=again.append)
    assert sum(line.startswith("[skip]") for line in again) == 10  # every stage was finished
    assert not any(line.startswith("[start]") for line in again)


def test_report_checks_use_standard_errors():
    """The report's verdicts compare exact NLLs at 2 standard errors, not bare point estimates."""
    from paradistill.quickstart.report import checks, compare

    def row(label, ppl, se, entropy=3.5):
        return {"label": label, "exact_ppl": ppl, "exact_nll_se": se, "entropy": entropy}

    assert compare(row("a", 100.0, 0.01), row("b", 101.0, 0.01)) == "within noise"  # |log ratio| 0.00995 < 0.028
    assert compare(row("a", 100.0, 0.01), row("b", 120.0, 0.01)) == "lower"
    assert compare(row("a", 120.0, 0.01), row("b", 100.0, 0.01)) == "higher"
    plan = {"gd_steps": [8, 32], "sdtt_from": 64, "adjust_k": []}
    rows = [row("MDLM T=8", 200.0, 0.02), row("GD-MDLM T=8", 150.0, 0.02), row("GD-MDLM T=32", 1.0, 0.0),
            row("MDLM T=64", 100.0, 0.02), row("SDTT round 2 T=16", 101.0, 0.02)]
    text = "\n".join(checks(rows, plan))
    assert "GD-MDLM vs MDLM at T=8" in text and "T=32" not in text
    assert "(lower beyond sampling noise; one training seed, not a claim)" in text
    assert "better" not in text  # one training seed never makes a method 'better'
    assert "SDTT round 2 T=16 vs its teacher MDLM T=64: Gen PPL 101.00 vs 100.00 (within noise)" in text
    rows.append(row("AR (KV cache)", 40.0, 0.02))
    rows.append(row("MDLM T=L (first-hitting)", 70.0, 0.02))
    text = "\n".join(checks(rows, plan))
    assert ("MDLM T=64 (ancestral, 64 steps) vs AR: Gen PPL 100.00 vs 40.00 (2.50x [95% CI 2.37, 2.64]; target "
            "<= 2x: NOT met)") in text
    assert ("MDLM T=L (first-hitting) (one token per pass) vs AR: Gen PPL 70.00 vs 40.00 (1.75x [95% CI 1.66, 1.85]; "
            "target <= 2x: met)") in text


def test_target_check_needs_the_whole_interval():
    """A 1.81x point estimate with a wide interval is neither met nor missed; the interval is exp(+-1.96 s.e.)."""
    import math

    from paradistill.quickstart.report import target_check

    def row(ppl, se):
        return {"exact_ppl": ppl, "exact_nll_se": se}

    wide = target_check(row(9.27, 0.08), row(5.11, 0.06), 2.0)
    assert wide.startswith("1.81x [95% CI") and wide.endswith("not settled: the interval contains the target (more --check-samples narrow it)")
    lo = 9.27 / 5.11 * math.exp(-1.96 * 0.1)
    assert f"{lo:.2f}," in wide
    assert target_check(row(6.0, 0.01), row(5.0, 0.01), 2.0).endswith(": met")
    assert target_check(row(12.0, 0.01), row(5.0, 0.01), 2.0).endswith(": NOT met")
    assert target_check({"gen_ppl": 9.0}, {"gen_ppl": 5.0}, 2.0).endswith("met (point estimate)")


def test_quickstart_starts_from_the_shipped_bases_by_default(tmp_path):
    """On the builtin corpus with the tiny recipe the plan names the shipped bases and the base stages return
    their package paths without training; --from-scratch, another corpus or overrides train them."""
    from paradistill.bases import resolve
    from paradistill.quickstart import stages
    from paradistill.quickstart.run import QuickstartConfig, build_stages, shipped_bases

    bases = shipped_bases(QuickstartConfig())
    assert bases == {"ar": "builtin:ar", "mdlm": "builtin:mdlm", "bd3lm": "builtin:bd3lm-b4"}
    assert shipped_bases(QuickstartConfig(from_scratch=True)) is None
    assert shipped_bases(QuickstartConfig(corpus="x.txt")) is None
    assert shipped_bases(QuickstartConfig(overrides=["model.dim=32"])) is None
    ctx = {"plan": {"bases": bases}, "out": str(tmp_path)}
    for kind, stage in (("ar", stages.stage_ar), ("mdlm", stages.stage_mdlm), ("bd3lm", stages.stage_bd3lm)):
        out = stage(ctx)
        assert out["run"] == str(resolve(bases[kind])) and out["seconds"] == 0.0
    assert not (tmp_path / "models").exists()  # nothing was trained
    plan = {**PLAN, "bases": bases, "budget_minutes": 16, "block_size": 4, "gd_teacher": "ar", "gd_overrides": [],
            "corpus": "builtin", "tokenizer": "builtin", "seq_len": 64, "seed": 0, "num_samples": 16}
    deps = {s.name: s.deps for s in build_stages(plan)}
    assert deps["gd"] == ["ar", "mdlm"]  # the GD student starts from the MDLM base
    assert {s.name: s.deps for s in build_stages({**plan, "bases": None})}["gd"] == ["ar"]


def test_quickstart_samples_each_diffusion_base_one_token_per_pass_beside_its_ancestral_rows():
    """T >= L: first-hitting (exactly one token per pass) for the MDLM, B passes per block for BD3-LM (the official
    BD3-LM sampler's default), beside the ancestral rows at every planned step count."""
    from paradistill.quickstart.evaluation import settings_for

    plan = {"seq_len": 64, "mdlm_steps": [16, 64], "block_size": 4, "bd3_steps_per_block": [1, 4]}
    ctx = {"plan": plan, "inputs": {"mdlm": {"run": "m"}, "bd3lm": {"run": "b"}}}
    mdlm = {(s["sampler"], s["steps"]): s["label"] for s in settings_for("mdlm", ctx)}
    assert mdlm == {("ancestral", 16): "MDLM T=16", ("ancestral", 64): "MDLM T=64",
                    ("first-hitting", 64): "MDLM T=L (first-hitting)"}
    bd3 = {(s["sampler"], s["steps"]): s["label"] for s in settings_for("bd3lm", ctx)}
    assert bd3 == {("ancestral", 1): "BD3-LM B=4 T=1/block", ("ancestral", 4): "BD3-LM B=4 T=4/block",
                   ("first-hitting", 4): "BD3-LM B=4 T=4/block (first-hitting)"}
