"""The quick-start pipeline end to end at tiny sizes (slow): every stage runs, the report and plot exist,
and a re-run skips every finished stage."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

PLAN = {"ar_steps": 30, "base_steps": 30, "bd3_steps": 20, "sdtt_steps_per_round": 10, "sdtt_from": 16, "sdtt_to": 4,
        "adjust_trajectories": 32, "adjust_steps": 10, "mdlm_steps": [4, 16], "gd_steps": [4, 16],
        "bd3_steps_per_block": [2], "adjust_k": [2]}
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
    assert "GD-MDLM vs MDLM at T=8" in text and "(better)" in text and "T=32" not in text
    assert "no worse: within noise" in text
