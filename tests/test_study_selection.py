"""Seeded studies: choosing what to evaluate (arms, regimes) and which sampling draw each training seed gets."""

import json

import pytest


@pytest.fixture
def gumbel_study(monkeypatch):
    """experiments.gumbel.on_bases with models loaded by name and a stub sampler: `calls` lists (model, steps, sampling
    seed) per evaluated row; an informed (gd-*) arm scores 0.1 nats/token below the others."""
    import experiments.eval.sample_quality as sample_quality
    import experiments.gumbel.on_bases as study

    calls = []
    monkeypatch.setattr(study, "load_model", lambda name, path: name)

    def fake_run_setting(loaded, label, sampler, steps, ns, noise_temperature):
        calls.append((loaded, steps, ns.seed))
        return {"label": label, "steps": steps, "nll": 2.0 - 0.1 * loaded.startswith("gd"), "nll_se": 0.01,
                "gen_ppl": 7.0, "gen_ppl_lo": 6.9, "gen_ppl_hi": 7.1, "slips_per_sample": 1.0, "entropy": 3.4}

    monkeypatch.setattr(sample_quality, "run_setting", fake_run_setting)
    return study.main, calls


def test_gumbel_study_evaluates_only_the_arms_and_regimes_asked_for(tmp_path, gumbel_study):
    """--arms and --regimes restrict what experiments.gumbel.on_bases samples (a confirmation on fresh seeds
    evaluates one pair of arms in one regime); the base is still evaluated for context, and the effect of the pair
    is summarized from the rows it has. An unknown arm or regime is refused by argparse."""
    main, calls = gumbel_study
    main(["--runs", str(tmp_path / "runs"), "--seeds", "3", "4", "--arms", "gd-replace", "ind-replace",
          "--regimes", "T=4", "--out", str(tmp_path / "out")])
    assert sorted(c[:2] for c in calls) == sorted([("gd-replace", 4), ("ind-replace", 4)] * 2 + [("builtin:mdlm", 4)])
    verdicts = json.loads((tmp_path / "out" / "verdicts.json").read_text())
    assert [(v["arm"], v["control"], v["regime"]) for v in verdicts] == [("gd-replace", "ind-replace", "T=4")]
    assert verdicts[0]["effects"] == pytest.approx([-0.1, -0.1])
    for bad in (["--arms", "gd-mul"], ["--regimes", "T=8"]):
        with pytest.raises(SystemExit):
            main(bad + ["--out", str(tmp_path / "bad")])


def test_vary_sample_seed_gives_each_training_seed_its_own_draw_shared_by_arm_and_control(tmp_path, gumbel_study):
    """By default training seed S uses SAMPLE_SEED + S for its arm and its control alike, and the reference
    evaluated once keeps SAMPLE_SEED; --no-vary-sample-seed samples every seed with SAMPLE_SEED (one shared draw).
    Each row records the sampling seed it was drawn with."""
    main, calls = gumbel_study
    argv = ["--runs", str(tmp_path), "--seeds", "3", "5", "--arms", "gd-add", "ind-add", "--regimes", "T=4",
            "--sample-seed", "10"]
    for extra, expect in ((["--no-vary-sample-seed"], {3: 10, 5: 10, None: 10}), ([], {3: 13, 5: 15, None: 10})):
        out = tmp_path / ("shared" if extra else "vary")
        calls.clear()
        main(argv + extra + ["--out", str(out)])
        rows = json.loads((out / "rows.json").read_text())["rows"]
        want = {(a, s): expect[s] for a, s in [("gd-add", 3), ("ind-add", 3), ("gd-add", 5), ("ind-add", 5),
                                               ("builtin:mdlm", None)]}
        assert {(r["arm"], r["train_seed"]): r["sample_seed"] for r in rows} == want
        assert sorted(c[2] for c in calls) == sorted(want.values())  # the sampler was given those seeds


def test_resuming_with_another_sampling_mode_is_refused_by_name(tmp_path, gumbel_study):
    """Rows kept in OUT were drawn with one sampling mode; resuming into OUT with the other is a one-line error
    naming OUT's rows.json, and the rows already saved stay as they were."""
    main, _ = gumbel_study
    argv = ["--runs", str(tmp_path), "--seeds", "1", "--arms", "gd-add", "ind-add", "--regimes", "T=4",
            "--out", str(tmp_path / "out")]
    main(argv + ["--no-vary-sample-seed"])
    saved = (tmp_path / "out" / "rows.json").read_text()
    with pytest.raises(SystemExit, match=r"out/rows.json: gd-add \(training seed 1\) was sampled with seed 0, "
                                         r"this run would use 1; pass the --sample-seed"):
        main(argv)
    assert (tmp_path / "out" / "rows.json").read_text() == saved
    main(argv + ["--no-vary-sample-seed"])  # the same mode resumes
