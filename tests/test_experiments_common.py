"""experiments/common: the one exact scorer every experiment reports with, and the LABEL=RUN model arguments."""

import math
import statistics

import pytest
import torch

from experiments.common.models import load_model, model_args
from experiments.common.scoring import ADJUST_FIELDS, GUMBEL_FIELDS, SDTT_FIELDS, exact_score
from paradistill.data.grammar import StoryGrammar


@pytest.fixture(scope="module")
def grammar():
    return StoryGrammar()


def _samples(grammar, n=6, length=24, seed=0):
    return grammar.sample(n, length, torch.Generator().manual_seed(seed))


def test_gen_ppl_is_exp_of_the_mean_token_nll_under_the_generator(grammar):
    x = _samples(grammar)
    s = exact_score(x, grammar)
    logp = [float(v) for v in grammar.log_prob(x)]  # independent path: whole-sequence log-probabilities
    per_token = [-v / (x.shape[1] - 1) for v in logp]
    assert s.nll == pytest.approx(-sum(logp) / (x.numel() - x.shape[0]), rel=1e-12)
    assert s.gen_ppl == pytest.approx(math.exp(s.nll), rel=1e-12)
    assert s.nll_se == pytest.approx(statistics.stdev(per_token) / math.sqrt(len(per_token)), rel=1e-9)
    assert s.gen_ppl_lo < s.gen_ppl < s.gen_ppl_hi
    assert s.num == 6 and s.impossible_tokens == 0 and s.impossible_samples == 0


def test_entropy_is_the_mean_unigram_entropy_of_positions_after_bos(grammar):
    x = _samples(grammar, n=3)
    expected = []
    for row in x[:, 1:].tolist():
        n = len(row)
        expected.append(-sum(row.count(t) / n * math.log(row.count(t) / n) for t in set(row)))
    assert exact_score(x, grammar).entropy == pytest.approx(sum(expected) / 3, rel=1e-12)


def test_a_forbidden_token_counts_as_one_slip_at_its_position(grammar):
    x = _samples(grammar, n=4, length=32, seed=1)
    assert exact_score(x, grammar).slips_per_sample == 0  # the generator's own samples (no noise tokens drawn)
    lp = grammar.emit_logp[grammar.states(x)[1, 9]]  # the next-token log-probs after position 9 of sample 1
    forbidden = int(torch.nonzero((lp - grammar.noise_logp).abs() < 1e-9)[0])  # off-grammar, not PAD/MASK
    x[1, 10] = forbidden
    s = exact_score(x, grammar)
    assert s.slips_per_sample >= 0.25 and s.clean_samples == 0.75
    # 9 = the 0-based index of position 10 among the scored positions 1..L-1; the other three reach L-1 = 31
    assert s.tokens_before_first_slip == pytest.approx((3 * 31 + 9) / 4)
    counts = [0, s.slips_per_sample * 4, 0, 0]  # one sample holds all the slips
    assert s.slips_se == pytest.approx(statistics.stdev(counts) / 2, rel=1e-9)


def test_slips_cell_gives_the_95_interval_and_the_point_alone_without_a_standard_error():
    from experiments.bases.evaluate import slips_cell

    assert slips_cell(2.2, 0.05) == "2.20 [2.10, 2.30]"
    assert slips_cell(2.2, None) == "2.20" and slips_cell(2.2, float("nan")) == "2.20"


def test_a_mask_left_in_a_sample_is_impossible_and_makes_the_nll_infinite(grammar):
    from paradistill.data.tokenizers import builtin_tokenizer

    x = _samples(grammar, n=3)
    x[2, 5] = builtin_tokenizer().mask_id
    s = exact_score(x, grammar)
    assert s.impossible_tokens == 1 and s.impossible_samples == 1
    assert math.isinf(s.nll) and math.isinf(s.gen_ppl) and math.isfinite(s.nll_se)


def test_rows_keep_each_experiment_familys_key_names(grammar):
    s = exact_score(_samples(grammar), grammar)
    assert list(s.row(GUMBEL_FIELDS)) == list(GUMBEL_FIELDS)
    sdtt, adjust = s.row(SDTT_FIELDS), s.row(ADJUST_FIELDS)
    assert sdtt["violation_free"] == adjust["clean_samples"] == s.clean_samples
    assert sdtt["tokens_before_violation"] == adjust["tokens_before_first_slip"]


def test_model_arguments_are_refused_in_one_line_before_any_work(tmp_path):
    assert model_args(["a=runs/x", "b=c=d"]) == [("a", "runs/x"), ("b", "c=d")]
    for bad in ("runs/x", "=runs/x", "a="):
        with pytest.raises(SystemExit, match=r"^--model .*: takes LABEL=RUN"):
            model_args(["ok=r", bad])
    with pytest.raises(SystemExit) as err:
        load_model("m", tmp_path / "missing")
    assert str(err.value).startswith(f"--model m={tmp_path / 'missing'}: ") and "\n" not in str(err.value)


def _experiment_modules():
    import pkgutil

    import experiments

    return sorted(m.name for m in pkgutil.walk_packages(experiments.__path__, "experiments.") if not m.ispkg)


@pytest.mark.parametrize("name", _experiment_modules())
def test_every_experiment_has_help_and_every_import_in_it_resolves(name, capsys, monkeypatch):
    """`python -m NAME --help` exits 0 with a usage text, and every `from X import Y` in the module, including those
    inside functions (the package's heavy imports are deferred), names something that exists: a module moved in
    src/ breaks this test, not an experiment run hours later."""
    import ast
    import importlib

    mod = importlib.import_module(name)
    for node in ast.walk(ast.parse(open(mod.__file__).read())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            target = importlib.import_module(node.module)
            for alias in node.names:
                found = hasattr(target, alias.name) or (hasattr(target, "__path__") and importlib.util.find_spec(
                    f"{node.module}.{alias.name}") is not None)
                assert found, f"{name}: `from {node.module} import {alias.name}` names nothing"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
    if not hasattr(mod, "main"):  # a library module of the package (common/*, sdtt/runs.py)
        return
    monkeypatch.setattr("sys.argv", [name, "--help"])
    with pytest.raises(SystemExit) as done:
        mod.main()
    assert done.value.code in (0, None) and "usage:" in capsys.readouterr().out


def test_seed_effect_is_the_student_t_interval_of_the_per_seed_effects():
    from scipy import stats

    from experiments.common.seeds import seed_effect

    e = seed_effect([-0.10, -0.20, -0.15])
    half = stats.t.ppf(0.975, 2) * statistics.stdev([-0.10, -0.20, -0.15]) / math.sqrt(3)
    assert e.mean == pytest.approx(-0.15) and e.hi == pytest.approx(-0.15 + half) and e.lo == pytest.approx(-0.15 - half)
    assert e.hi < 0 and e.verdict() == "better" and e.same_sign
    mixed = seed_effect([-0.3, 0.1, -0.05])
    assert mixed.lo < 0 < mixed.hi and mixed.verdict() == "within noise" and not mixed.same_sign
    assert seed_effect([0.2, 0.25, 0.3]).verdict("lower", "higher") == "higher"
    assert seed_effect([0.1]).verdict() == "one seed: no verdict"


def test_three_seeds_that_agree_more_closely_than_their_sampling_error_get_that_error_as_the_interval():
    """Effects -0.017, -0.016, -0.018 with s.e. 0.03 each: the t interval of their spread excludes 0 by luck of three
    points; the interval is never narrower than sampling error alone implies, 1.96 sqrt(sum se^2) / n."""
    from experiments.common.seeds import seed_effect

    tight = seed_effect([-0.017, -0.016, -0.018], [0.03, 0.03, 0.03])
    half = 1.959964 * math.sqrt(3 * 0.03 ** 2) / 3
    assert tight.floored and tight.hi - tight.mean == pytest.approx(half, rel=1e-5)
    assert tight.verdict().startswith("within noise") and seed_effect([-0.017, -0.016, -0.018]).verdict() == "better"
    spread = seed_effect([-0.3, -0.1, -0.2], [0.01, 0.01, 0.01])  # the spread is wider than sampling: t interval
    assert not spread.floored and spread.hi == pytest.approx(seed_effect([-0.3, -0.1, -0.2]).hi)
    shared = seed_effect([-0.017, -0.016, -0.018], [0.03] * 3, shared_se=0.02)
    assert shared.hi - shared.mean == pytest.approx(math.hypot(half, 1.959964 * 0.02), rel=1e-5)


def test_bases_evaluation_takes_a_run_in_place_of_a_builtin_and_refuses_unknown_names():
    from experiments.bases.evaluate import main, parse_use, ratio

    assert parse_use(["mdlm=runs/x", "bd3lm-b4=runs/y"]) == {"mdlm": "runs/x", "bd3lm-b4": "runs/y"}
    for bad in ("mdlm", "gpt2=runs/x", "mdlm="):
        with pytest.raises(SystemExit, match="NAME=RUN"):
            parse_use([bad])
    with pytest.raises(SystemExit, match="--only gpt2: not a base"):  # refused before any sampling
        main(["--only", "mdlm", "gpt2"])
    r = ratio({"nll": 2.0, "nll_se": 0.03}, {"nll": 1.5, "nll_se": 0.04})
    assert r["ratio"] == pytest.approx(math.exp(0.5))
    assert r["ratio_ci95"] == pytest.approx([math.exp(0.5 - 1.96 * 0.05), math.exp(0.5 + 1.96 * 0.05)])


def test_adaptation_study_counts_the_steps_to_reach_the_from_scratch_value_and_compares_arms_by_welch():
    from scipy import stats

    from experiments.bases.curves import compare, welch

    scratch = {s: [(500, 3.0), (1000, v)] for s, v in ((0, 1.90), (1, 1.96), (2, 1.88))}
    shift = {0: [(200, 1.95), (250, 1.88)], 1: [(200, 1.90), (250, 1.85)], 2: [(200, 1.99), (250, 1.92)]}
    arm = compare({"scratch": scratch, "shift": shift})["shift"]
    assert [s["reaches_at"] for s in arm["seeds"]] == [250, 200, None]
    assert [s["fraction"] for s in arm["seeds"]] == [0.25, 0.2, None]
    assert arm["seeds_met"] == 2 and not arm["met"]
    assert arm["mean_reaches_at"] == 250 and arm["mean_fraction"] == 0.25  # mean 1.8833 <= 1.9133; 1.9467 > 1.9133
    a, b = [1.88, 1.85, 1.92], [1.90, 1.96, 1.88]
    diff, lo, hi = welch(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(statistics.mean(a) - statistics.mean(b))
    assert (lo, hi) == pytest.approx((ci.low, ci.high))


def test_bases_evaluation_only_keeps_the_other_rows_of_an_earlier_run_with_the_same_draws(tmp_path):
    import argparse
    import json

    from experiments.bases.evaluate import SETTINGS, keep_other_rows

    labels = [label for label, *_ in SETTINGS]
    old = {"args": {"num": 256, "seed": 0, "length": 64}, "rows": [{"label": x, "v": "old"} for x in labels]}
    (tmp_path / "targets.json").write_text(json.dumps(old))
    args = argparse.Namespace(num=256, seed=0, length=64)
    new = [{"label": "AR", "v": "new"}, {"label": labels[2], "v": "new"}]
    merged = keep_other_rows(new, tmp_path / "targets.json", args)
    assert [r["label"] for r in merged] == labels  # every setting, in the table's order
    assert [r["v"] for r in merged] == ["old", "new", "new"] + ["old"] * (len(labels) - 3)
    # other draws (here another seed) are not mixed in; no earlier file: only the new rows
    assert keep_other_rows(new, tmp_path / "targets.json", argparse.Namespace(num=256, seed=1, length=64)) == new
    assert keep_other_rows(new, tmp_path / "missing.json", args) == new


def test_adjust_evaluation_reuses_base_rows_only_for_the_same_base_and_settings(tmp_path):
    """Several ADJUST samplers on one base share its sequential and marginal rows; a cache written for other
    weights, sample counts or Ks is ignored (the rows would then be recomputed)."""
    from experiments.adjust.sampler_quality import cached_rows
    from experiments.common.output import write_json

    key = {"base": "abc", "num": 512, "batch_size": 128, "ks": [2, 4]}
    row = ({"method": "marginal", "nll": 2.5}, ["a story", "another"])
    write_json(tmp_path / "rows.json", {"key": key, "rows": [[["marginal", 2, 1], list(row)]]})
    assert cached_rows(str(tmp_path / "rows.json"), key) == {("marginal", 2, 1): list(row)}
    for change in ({"base": "abd"}, {"num": 256}, {"ks": [2, 4, 8]}):
        assert cached_rows(str(tmp_path / "rows.json"), {**key, **change}) == {}
    assert cached_rows(str(tmp_path / "missing.json"), key) == {} and cached_rows(None, key) == {}
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SystemExit, match=r"--base-rows .*bad.json: not a rows cache"):
        cached_rows(str(tmp_path / "bad.json"), key)


def test_a_reference_shared_by_every_seed_widens_the_interval_by_its_own_error():
    """SDTT's students are all compared with one teacher evaluation: the spread over seeds cannot see that
    evaluation's sampling error, so nll_effect_row folds it in (and only when the reference row is shared)."""
    import math

    from experiments.common.seeds import nll_effect_row, seed_effect

    teacher = {"nll": 4.17, "nll_se": 0.058}
    students = [{"nll": 4.17 + e, "nll_se": 0.05} for e in (-0.076, -0.122, -0.099)]
    plain = seed_effect([s["nll"] - 4.17 for s in students])
    shared, _ = nll_effect_row("c", "l", [(s, teacher) for s in students], "better", "worse")
    own_floor = 1.959964 * math.sqrt(3 * 0.05 ** 2) / 3  # the students' own errors (the teacher's is shared)
    half = math.hypot(max(plain.hi - plain.mean, own_floor), 1.959964 * 0.058)
    assert plain.verdict() == "better" and shared["verdict"].startswith("within noise")
    assert shared["hi"] - shared["mean"] == pytest.approx(half, rel=1e-5) and shared["shared_se"] == 0.058
    copies, _ = nll_effect_row("c", "l", [(s, dict(teacher)) for s in students], "better", "worse")
    # per-seed references: no shared term, and the floor counts both rows' errors of each seed
    floor = 1.959964 * math.sqrt(3 * (0.05 ** 2 + 0.058 ** 2)) / 3
    assert copies["shared_se"] is None and copies["floored"]
    assert copies["hi"] - copies["mean"] == pytest.approx(max(plain.hi - plain.mean, floor), rel=1e-5)


@pytest.mark.parametrize("name, argv", [("experiments.bases.evaluate", ["--num", "0"]),
                                         ("experiments.sdtt.on_bases", ["--teacher-num", "-4"]),
                                         ("experiments.gumbel.noise_map", ["--num", "many"])])
def test_a_count_that_is_not_positive_is_refused_by_argparse_before_any_work(name, argv, capsys, monkeypatch):
    import importlib

    mod = importlib.import_module(name)
    monkeypatch.setattr("sys.argv", [name, *argv])
    with pytest.raises(SystemExit) as done:
        mod.main(argv) if "argv" in mod.main.__code__.co_varnames else mod.main()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert done.value.code == 2 and f"argument {argv[0]}" in err and ("positive count" in err or "not an integer" in err)


def test_growing_a_model_deeper_keeps_its_outputs_and_zeroes_only_the_new_blocks_write_outs(tmp_path):
    from experiments.bases.grow import ZERO_OUT, grow_depth, main
    from paradistill.loading import load
    from paradistill.models.transformer import ModelConfig, Transformer

    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=50, dim=32, n_layers=2, n_heads=2, max_len=16)).eval()
    for p in model.parameters():  # trained-looking weights: no zero write-outs to begin with
        torch.nn.init.normal_(p, std=0.1)
    grown = grow_depth(model, 3)
    assert grown.cfg.n_layers == 6
    x = torch.randint(0, 50, (3, 16))
    with torch.no_grad():
        assert torch.allclose(grown(x).logits, model(x).logits, atol=1e-5)
    state, old = grown.state_dict(), model.state_dict()
    assert torch.equal(state["blocks.3.mlp.0.weight"], old["blocks.1.mlp.0.weight"])  # old block i -> i * factor
    for i in (1, 2, 4, 5):
        assert all(not state[f"blocks.{i}.{n}"].any() for n in ZERO_OUT)
        assert state[f"blocks.{i}.attn.qkv.weight"].std() > 0  # the rest of a new block is initialised, not zero
    # the command writes a loadable checkpoint and refuses to overwrite one
    main(["builtin:mdlm", str(tmp_path / "g")])
    loaded = load(str(tmp_path / "g"))
    assert loaded.model.cfg.n_layers == 8 and loaded.config["method"]["grown_from"]["n_layers"] == 4
    with pytest.raises(SystemExit, match="exists"):
        main(["builtin:mdlm", str(tmp_path / "g")])


def test_run_comparison_pairs_validation_batches_and_refuses_a_missing_run(tmp_path):
    from experiments.bases.compare import main, paired

    d = paired([1.0, 2.0, 3.0, 4.0], [0.5, 1.5, 2.6, 3.4])  # differences 0.5, 0.5, 0.4, 0.6
    assert d["diff"] == pytest.approx(0.5) and d["ci95"][0] < 0.5 < d["ci95"][1]
    assert d["ci95"][1] - 0.5 == pytest.approx(3.182446 * statistics.stdev([0.5, 0.5, 0.4, 0.6]) / 2, rel=1e-5)
    with pytest.raises(SystemExit, match=r"^--run .*missing: no metrics.jsonl"):
        main(["--run", f"a={tmp_path / 'missing'}", "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="labels must differ"):
        main(["--run", f"a={tmp_path}", "--reference", "a=builtin:mdlm", "--out", str(tmp_path / "out")])


def _run_once(tmp_path, run_dir):
    """Source experiments/common/resumable.sh and call run_once with a command that records its arguments."""
    import subprocess
    from pathlib import Path
    script = Path(__file__).resolve().parent.parent / "experiments" / "common" / "resumable.sh"
    record = tmp_path / "args.txt"
    cmd = f'source "{script}"; run_once t "{run_dir}" sh -c \'echo "$@" > "{record}"\' x a'
    subprocess.run(["bash", "-c", cmd], check=True, capture_output=True)
    return record.read_text().split() if record.exists() else None


def test_run_once_starts_new_runs_resumes_interrupted_ones_and_skips_finished_ones(tmp_path):
    run = tmp_path / "run"
    assert _run_once(tmp_path, run) == ["a", "--out", str(run)]  # nothing there: a new run
    run.mkdir()
    (run / ".lock").write_text("{}")
    assert _run_once(tmp_path, run) == ["a", "--out", str(run)]  # only a stale lock: still nothing to resume
    (run / "round_1_32steps").mkdir()  # an SDTT run stopped after its first round: no top-level latest.json yet
    assert _run_once(tmp_path, run) == ["a", "--out", str(run), "--resume"]
    (run / "latest.json").write_text('{"path": "checkpoints/step_10", "final": false}')
    assert _run_once(tmp_path, run) == ["a", "--out", str(run), "--resume"]
    (tmp_path / "args.txt").unlink()
    (run / "latest.json").write_text('{"path": "checkpoints/final", "final": true}')
    assert _run_once(tmp_path, run) is None  # finished: skipped


def test_nelbo_pairs_models_on_shared_batches_and_refuses_a_wrong_kind_or_block(tmp_path, monkeypatch):
    """experiments.bases.nelbo: a model against itself differs by exactly 0 on every batch; a BD3-LM needs its block
    size and an MDLM refuses one; a checkpoint of another kind is a one-line error naming the --model."""
    import json

    from experiments.bases import compare
    from experiments.bases.nelbo import main

    monkeypatch.setattr(compare, "RECIPE_OVERRIDES", ["data.num_tokens=100000"])  # a small split: 2 batches of 32 rows

    main(["--kind", "bd3lm", "--block-size", "4", "--model", "a=builtin:bd3lm-b4", "--model", "b=builtin:bd3lm-b4",
          "--eval-batches", "2", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "nelbo.json").read_text())["rows"]
    assert rows[0]["batch_nelbos"] == rows[1]["batch_nelbos"] and len(rows[0]["batch_nelbos"]) == 2
    assert rows[1]["vs_first"]["diff"] == 0 and 1.3 < rows[0]["val_nelbo"] < 2.0
    assert "| b |" in (tmp_path / "nelbo.md").read_text() and (tmp_path / "COMMAND.md").is_file()
    for argv, match in [(["--kind", "bd3lm"], "--block-size None"), (["--kind", "mdlm", "--block-size", "4"],
                                                                      "--block-size 4"),
                        (["--kind", "mdlm", "--model", "x=builtin:bd3lm-b4"], "--model x=builtin:bd3lm-b4")]:
        argv = argv + ([] if "--model" in argv else ["--model", "a=builtin:mdlm"]) + ["--out", str(tmp_path / "e")]
        with pytest.raises(SystemExit, match=match):
            main(argv + ["--eval-batches", "1"])


def test_a_study_split_over_processes_merges_into_the_summary_of_one_folder(tmp_path):
    """experiments.gumbel.on_bases run as one process per seed (--seeds N --out DIR_N) and then --merge'd gives
    the summary of one folder holding every row; a row present in several folders (the shared base) counts once,
    and a folder without rows is refused by name."""
    import json

    from experiments.common.seeds import merge_rows
    from experiments.gumbel.on_bases import ARMS, REGIMES, main

    def row(arm, seed, regime, nll):
        return {"arm": arm, "train_seed": seed, "regime": regime, "steps": 4, "nll": nll, "nll_se": 0.05,
                "gen_ppl": 2.0, "gen_ppl_lo": 1.9, "gen_ppl_hi": 2.1, "slips_per_sample": 1.0, "entropy": 3.4}

    base = [row("builtin:mdlm", None, r[0], 2.0) for r in REGIMES]
    per_seed = {s: [row(a, s, r[0], 2.0 + 0.01 * s + 0.1 * i) for i, a in enumerate(ARMS) for r in REGIMES]
                for s in (0, 1, 2)}
    for s in per_seed:
        (tmp_path / f"s{s}").mkdir()
        (tmp_path / f"s{s}" / "rows.json").write_text(json.dumps({"args": {}, "rows": per_seed[s] + base}))
    (tmp_path / "all").mkdir()
    everything = [r for s in per_seed for r in per_seed[s]] + base
    (tmp_path / "all" / "rows.json").write_text(json.dumps({"args": {}, "rows": everything}))
    main(["--summarize", "--out", str(tmp_path / "all")])
    main(["--summarize", "--merge", *(str(tmp_path / f"s{s}") for s in per_seed), "--out", str(tmp_path / "merged")])
    merged = json.loads((tmp_path / "merged" / "rows.json").read_text())["rows"]
    assert len(merged) == len(everything)  # the base's rows, in every folder, once
    assert (tmp_path / "merged" / "summary.md").read_text() == (tmp_path / "all" / "summary.md").read_text()
    verdicts = json.loads((tmp_path / "merged" / "verdicts.json").read_text())
    assert len(verdicts) == 9 and all(len(v["effects"]) == 3 for v in verdicts)
    with pytest.raises(SystemExit, match=r"--merge: no rows.json in '.*nowhere'"):
        merge_rows([], [tmp_path / "nowhere"])


def _entropy_script(tmp_path, vary: str | None):
    """Run experiments/sdtt/on_bases_entropy.sh with PY a stub that records each call and writes its --json file."""
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "experiments" / "sdtt" / "on_bases_entropy.sh"
    runs, out, log = tmp_path / "runs", tmp_path / "out", tmp_path / "calls.txt"
    for p in ("paradistill", "official"):
        for s in (0, 1, 2):
            (runs / f"{p}-s{s}").mkdir(parents=True)
    stub = tmp_path / "py"
    stub.write_text(f'#!/usr/bin/env bash\necho "$@" >> "{log}"\n'
                    'while [ $# -gt 0 ]; do [ "$1" = --json ] && echo "{{}}" > "$2"; shift; done\n')
    stub.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "PY": str(stub), "RUNS": str(runs), "OUT": str(out)}
    if vary is not None:
        env["VARY_SAMPLE_SEED"] = vary
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    calls = log.read_text().splitlines() if log.exists() else []
    return done, [c for c in calls if "sample_quality" in c and "teacher" not in c], calls


def test_entropy_check_samples_each_training_seeds_students_with_its_own_seed_by_default(tmp_path):
    done, students, calls = _entropy_script(tmp_path, None)
    assert done.returncode == 0, done.stderr
    assert len(students) == 3 and all("--seed 0" in c for c in calls if "teacher-temp" in c and "sample_quality" in c)
    for s in (0, 1, 2):  # one call per training seed: its two students, sampled with seed s
        (call,) = [c for c in students if f"--json {tmp_path}/out/students_s{s}.json" in c]
        assert f"--seed {s} " in call and f"paradistill-s{s}=" in call and f"official-s{s}=" in call
        assert not any(f"-s{o}=" in call for o in (0, 1, 2) if o != s)
    assert all(f"students_s{s}.json" in calls[-1] for s in (0, 1, 2)) and "entropy_matched" in calls[-1]


def test_entropy_check_keeps_one_shared_draw_when_asked_and_refuses_a_bad_switch(tmp_path):
    done, students, _ = _entropy_script(tmp_path / "a", "0")
    assert done.returncode == 0 and len(students) == 1 and "--seed 0 " in students[0]
    assert students[0].count("--model") == 6
    bad, _, calls = _entropy_script(tmp_path / "b", "yes")
    assert bad.returncode == 2 and "VARY_SAMPLE_SEED=yes" in bad.stderr and not calls
