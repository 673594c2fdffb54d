"""Issue #25, "nothing lost around a run": one regression test per reported bug (test_bugNN_*), the run lock and
an interrupted `sample`; the other mechanisms (atomic outputs, thread count, plain progress lines, Ctrl-C hints)
are tested in test_run_mechanisms.py.

CLI calls run in-process (`paradistill.cli.main`) on the session's tiny trained run (conftest.tiny_run)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_model

from paradistill.cli import main
from paradistill.errors import UserError


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def env(tiny_run, monkeypatch, tmp_path):
    """A private copy of the tiny run in tmp_path/run; the shared data cache; cwd = tmp_path."""
    root, overrides = tiny_run
    shutil.copytree(root / "mdlm", tmp_path / "run")
    monkeypatch.setenv("PARADISTILL_CACHE", str(root / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path, overrides


def _read(path: Path) -> bytes:
    return Path(path).read_bytes()


# ------------------------------------------------------------------------------------------------ bug 1
def test_bug01_file_named_like_a_recipe_does_not_hide_it(tmp_path, monkeypatch):
    from paradistill.recipes import load_recipe, recipe_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").mkdir()  # e.g. an earlier `--out tiny`
    (tmp_path / "lm1b-small").write_text("not a recipe")
    assert recipe_path("tiny").name == "tiny.yaml" and recipe_path("tiny").parent.name == "recipes"
    assert load_recipe("tiny").name == "tiny"
    assert load_recipe("lm1b-small").name == "lm1b-small"
    (tmp_path / "mine.yaml").write_text("train:\n  max_steps: 7\n")
    assert load_recipe("mine.yaml").train.max_steps == 7
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "r").write_text("train:\n  max_steps: 9\n")
    assert load_recipe("sub/r").train.max_steps == 9  # a separator makes it a path


# ------------------------------------------------------------------------------------------------ bug 2
def _one_document(path: Path, words: int = 3000) -> Path:
    import random

    rng = random.Random(0)
    vocab = "the cat sat on a mat and then ran off to see the dog who was very happy".split()
    path.write_text(" ".join(rng.choice(vocab) for _ in range(words)) + "\n")  # no blank line: one document
    return path


def test_bug02_single_document_corpus_gets_a_token_split(tmp_path):
    from paradistill.data.packing import prepare_data

    text = _one_document(tmp_path / "one.txt")
    data = prepare_data(str(text), "char", 32, mode="wrap", val_fraction=0.05, cache_dir=tmp_path / "c",
                        progress=False)
    assert len(data.val) >= 1 and len(data.train) > 10 * len(data.val) / 2
    assert data.meta["split"] == "tokens"
    n_tokens = len(text.read_text()) + 2
    assert abs(data.val.size - 0.05 * n_tokens) <= 32  # the last ~5% of the stream, cut into whole rows
    assert int(data.val[0, 0]) == data.tokenizer.bos_id
    # a corpus shorter than two rows keeps everything for training
    short = tmp_path / "short.txt"
    short.write_text("a tiny text\n")
    small = prepare_data(str(short), "char", 32, mode="wrap", cache_dir=tmp_path / "c", progress=False)
    assert len(small.val) == 0 and len(small.train) == 1


@pytest.mark.parametrize("extra", [[], ["data.val_fraction=0"]], ids=["token split", "val_fraction=0"])
def test_bug02_quick_training_on_one_document_completes(env, capsys, extra):
    tmp, _ = env
    text = _one_document(tmp / "one.txt")
    code, out, err = cli(capsys, "train", "mdlm", "--out", tmp / "r", f"data.corpus={text}", "data.tokenizer=char",
                         "data.mode=wrap", "data.seq_len=32", "model.dim=32", "model.n_layers=1", "model.n_heads=2",
                         "train.max_steps=2", "train.batch_size=8", "train.eval_every=1", "train.eval_batches=1",
                         *extra)
    assert code == 0, err
    vals = [json.loads(x) for x in (tmp / "r" / "metrics.jsonl").read_text().splitlines() if '"val"' in x]
    assert (len(vals) > 0) == (not extra)
    if extra:
        assert "validation split is empty" in err


def test_bug02_checkpoint_is_written_before_evaluating(env, capsys, monkeypatch):
    import paradistill.train.loop as loop

    tmp, overrides = env

    def broken(*a, **k):
        raise RuntimeError("evaluation failed")

    monkeypatch.setattr(loop, "run_eval", broken)
    with pytest.raises(RuntimeError):
        main(["train", "mdlm", "--out", str(tmp / "r"), *overrides, "train.max_steps=4", "train.checkpoint_every=2",
              "train.eval_every=2"])
    assert json.loads((tmp / "r" / "latest.json").read_text())["step"] == 2  # the training up to it is kept
    assert not (tmp / "r" / ".lock").exists()  # the lock is released on the way out


# ------------------------------------------------------------------------------------------------ bug 3
def test_bug03_train_without_resume_into_an_existing_run_is_refused(env, capsys):
    tmp, overrides = env
    before = {p: _read(p) for p in (tmp / "run").rglob("*") if p.is_file()}
    code, _, err = cli(capsys, "train", "mdlm", "--out", tmp / "run", *overrides)
    assert code == 2 and "already holds a training run" in err and "--resume" in err
    assert {p: _read(p) for p in (tmp / "run").rglob("*") if p.is_file()} == before


# ------------------------------------------------------------------------------------------------ bug 4
def test_bug04_a_locked_run_is_refused(env, capsys):
    from paradistill.rundir import RunLock

    tmp, overrides = env
    with RunLock(tmp / "run", command="another training"):  # held by this (live) process
        code, _, err = cli(capsys, "train", "mdlm", "--resume", "--out", tmp / "run", *overrides,
                           "train.max_steps=6")
    assert code == 2 and "is in use by process" in err and "another training" in err
    assert json.loads((tmp / "run" / "latest.json").read_text())["step"] == 5


def test_bug04_two_processes_cannot_lock_one_run(tmp_path):
    """Across a process boundary: a child holding the lock makes this process's acquire fail."""
    from paradistill.rundir import RunLock

    src = Path(__file__).resolve().parents[1] / "src"
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]);"
                              "from paradistill.rundir import RunLock; l = RunLock(sys.argv[2]).acquire();"
                              "print('locked', flush=True); time.sleep(60)", str(src), str(tmp_path / "run")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match="is in use by process"):
            RunLock(tmp_path / "run").acquire()
    finally:
        child.kill()
        child.wait()
    # the holder was killed: its lock is stale, reported and taken over
    with RunLock(tmp_path / "run") as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert not (tmp_path / "run" / ".lock").exists()


def test_bug04_stale_lock_is_reported_and_taken_over(env, capsys):
    tmp, overrides = env
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (tmp / "run" / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                   "started": "earlier", "command": "killed run"}))
    code, _, err = cli(capsys, "train", "mdlm", "--resume", "--out", tmp / "run", *overrides, "train.max_steps=6")
    assert code == 0, err
    assert "no longer running" in err and "killed run" in err
    assert json.loads((tmp / "run" / "latest.json").read_text())["step"] == 6
    assert not (tmp / "run" / ".lock").exists()


def test_bug04_lock_from_another_host_names_the_fix(env, capsys):
    tmp, overrides = env
    (tmp / "run" / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "x", "command": "y"}))
    code, _, err = cli(capsys, "train", "mdlm", "--resume", "--out", tmp / "run", *overrides, "train.max_steps=6")
    assert code == 2 and "elsewhere" in err and "delete" in err and ".lock" in err


# ------------------------------------------------------------------------------------------------ bug 5
@pytest.mark.parametrize("argv", [
    ["distill", "sdtt", "--teacher", "{run}", "--out", "{run}", "--from-steps", "4", "--to-steps", "2"],
    ["distill", "sdtt", "--teacher", "{ckpt}", "--out", "{run}", "--from-steps", "4", "--to-steps", "2"],
    ["distill", "adjust", "--base", "{run}", "--out", "{run}", "--resume"],
    ["distill", "gumbel", "--teacher", "{run}", "--out", "{run}", "--resume"],
], ids=["sdtt", "sdtt-ckpt", "adjust", "gumbel"])
def test_bug05_distill_out_onto_its_teacher_is_refused(env, capsys, argv):
    tmp, overrides = env
    run = tmp / "run"
    ckpt = run / json.loads((run / "latest.json").read_text())["path"]
    before = _read(run / "latest.json")
    code, _, err = cli(capsys, *[a.format(run=run, ckpt=ckpt) for a in argv], *overrides)
    assert code == 2 and "is the run directory of" in err, err
    assert _read(run / "latest.json") == before and not list(run.glob("round_*"))


# --------------------------------------------------------------------------------------------- bugs 6-8
@pytest.fixture
def samples(env, capsys):
    tmp, _ = env
    code, _, err = cli(capsys, "sample", tmp / "run", "--num", "4", "--batch-size", "2", "--steps", "4",
                       "--out", tmp / "s.jsonl")
    assert code == 0, err
    return tmp / "s.jsonl"


def test_bug06_eval_out_onto_its_input_is_refused(samples, capsys):
    before = _read(samples)
    code, _, err = cli(capsys, "eval", samples, "--out", samples)
    assert code == 2 and "is also an input" in err
    assert _read(samples) == before


def test_bug07_sampling_twice_needs_overwrite(samples, capsys):
    before = _read(samples)
    code, _, err = cli(capsys, "sample", samples.parent / "run", "--num", "2", "--steps", "2", "--out", samples)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert _read(samples) == before
    code, _, err = cli(capsys, "sample", samples.parent / "run", "--num", "2", "--steps", "2", "--out", samples,
                       "--overwrite", "--seed", "5")
    assert code == 0 and len(samples.read_text().splitlines()) == 2


def test_bug08_full_disk_keeps_the_previous_samples(samples, capsys, monkeypatch):
    import paradistill.io as pio

    before = _read(samples)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pio.os, "fsync", full)
    code, _, err = cli(capsys, "sample", samples.parent / "run", "--num", "2", "--steps", "2", "--out", samples,
                       "--overwrite")
    assert code == 2 and "disk full" in err and str(samples) in err
    assert _read(samples) == before
    assert not [p for p in samples.parent.iterdir() if ".tmp-" in p.name]


def test_bug08_eval_outputs_are_atomic(samples, capsys, monkeypatch):
    code, _, err = cli(capsys, "eval", samples, "--out", samples.with_name("e.json"))
    assert code == 0, err
    before = _read(samples.with_name("e.json"))
    monkeypatch.setattr("paradistill.io.os.replace", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    code, _, err = cli(capsys, "eval", samples, "--out", samples.with_name("e.json"), "--overwrite")
    assert code == 2 and "disk full" in err
    assert _read(samples.with_name("e.json")) == before


# ------------------------------------------------------------------------------------------------ bug 9
def test_bug09_a_run_that_skipped_most_steps_is_not_reported_as_trained(env, capsys):
    tmp, overrides = env
    code, _, err = cli(capsys, "train", "mdlm", "--out", tmp / "nan", *overrides, "train.max_steps=6",
                       "train.lr=1e30", "train.warmup_steps=0", "train.nan_policy=skip", "train.max_skipped_steps=100",
                       "train.checkpoint_every=2")
    assert code == 2 and "were skipped" in err
    latest = tmp / "nan" / "latest.json"
    assert not latest.exists() or not json.loads(latest.read_text())["final"]
    for line in (tmp / "nan" / "metrics.jsonl").read_text().splitlines():  # strict JSON: no bare NaN
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_bug09_metrics_never_hold_bare_nan(tmp_path):
    from paradistill.train.loop import MetricsLog

    log = MetricsLog(tmp_path, True)
    log.write({"step": 1, "kind": "val", "val_loss": float("nan"), "val_ppl": float("inf")})
    rec = json.loads((tmp_path / "metrics.jsonl").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert rec["val_loss"] is None and rec["val_ppl"] is None


# ----------------------------------------------------------------------------------------------- bug 10
def test_bug10_resume_checks_kind_recipe_and_that_the_run_exists(env, capsys):
    tmp, overrides = env
    code, _, err = cli(capsys, "train", "ar", "--resume", "--out", tmp / "run", *overrides)
    assert code == 2 and "holds a 'mdlm' run, not 'ar'" in err
    from paradistill.recipes import recipe_path

    (tmp / "other.yaml").write_text(recipe_path("tiny").read_text())
    code, _, err = cli(capsys, "train", "mdlm", "--resume", "--out", tmp / "run", "--recipe", tmp / "other.yaml",
                       *overrides)
    assert code == 2 and "recipe 'tiny', not 'other'" in err
    code, _, err = cli(capsys, "train", "mdlm", "--resume", "--out", tmp / "rnu", *overrides)
    assert code == 2 and "holds no run to continue" in err and not (tmp / "rnu").exists()
    code, _, err = cli(capsys, "train", "mdlm", "--resume", "--out", tmp / "run", *overrides, "model.dim=64")
    assert code == 2 and "model.dim=32" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------------------------- bug 11
def test_bug11_config_without_an_architecture_key_is_refused(env, capsys):
    tmp, _ = env
    ckpt = tmp / "run" / json.loads((tmp / "run" / "latest.json").read_text())["path"]
    config = json.loads((ckpt / "config.json").read_text())
    del config["model"]["n_heads"]
    (ckpt / "config.json").write_text(json.dumps(config))
    code, _, err = cli(capsys, "sample", tmp / "run", "--num", "1", "--out", tmp / "x.jsonl")
    assert code == 2 and "lacks model.n_heads" in err
    assert not (tmp / "x.jsonl").exists()


# ----------------------------------------------------------------------------------------------- bug 12
def test_bug12_infill_generates_only_the_masked_positions(tiny_tokenizer):
    from paradistill.generation import build_template

    row, fixed = build_template(tiny_tokenizer, 10, infill="a [MASK] b [MASK]")
    tok = tiny_tokenizer
    ids = row.tolist()
    assert ids[:5] == [tok.bos_id, tok.encode("a")[0], tok.mask_id, tok.encode("b")[0], tok.mask_id]
    assert ids[5] == tok.eos_id and ids[6:] == [tok.pad_id] * 4
    assert (~fixed).nonzero().flatten().tolist() == [2, 4]  # exactly the [MASK] positions are generated
    with pytest.raises(UserError, match=r"has no \[MASK\]"):
        build_template(tok, 10, infill="a b")


def test_bug12_infill_through_the_cli(env, capsys):
    tmp, _ = env
    code, _, err = cli(capsys, "sample", tmp / "run", "--num", "2", "--steps", "4", "--infill", "the [MASK] [MASK] .",
                       "--out", tmp / "i.jsonl")
    assert code == 0, err
    from paradistill.data.tokenizers import builtin_tokenizer

    tok = builtin_tokenizer()
    for line in (tmp / "i.jsonl").read_text().splitlines():
        ids = json.loads(line)["tokens"]
        n = 1 + len(tok.encode("the")) + 2 + len(tok.encode("."))
        assert ids[n] == tok.eos_id and set(ids[n + 1:]) <= {tok.pad_id}
        assert tok.mask_id not in ids
    code, _, err = cli(capsys, "sample", tmp / "run", "--infill", "no mask here", "--out", tmp / "j.jsonl")
    assert code == 2 and "[MASK]" in err and "--prompt" in err


# ----------------------------------------------------------------------------------------------- bug 13
@pytest.mark.parametrize("length,pattern", [(2_000_000, "exceeds the 1024 positions"), (0, "must be >= 2")])
def test_bug13_sample_length_is_checked_before_work(env, capsys, length, pattern):
    tmp, _ = env
    code, _, err = cli(capsys, "sample", tmp / "run", "--length", length, "--out", tmp / "l.jsonl")
    assert code == 2 and pattern in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------------------------- bug 14
def test_bug14_text_only_records_are_tokenised_or_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "t.jsonl"
    from paradistill.eval.evaluate import generator_records

    texts = [r["text"] for r in generator_records(4, 24, seed=3)]
    f.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    code, _, err = cli(capsys, "eval", f)
    assert code == 2 and "has text but no 'tokens'" in err and "--tokenizer" in err
    code, _, err = cli(capsys, "eval", f, "--tokenizer", "builtin", "--metrics", "entropy,distinct")
    assert code == 0, err
    res = json.loads(f.with_suffix(".eval.json").read_text())
    assert res["entropy"] > 1.0 and res["distinct_1"] > 0


# ----------------------------------------------------------------------------------------------- bug 15
def test_bug15_metrics_do_not_depend_on_the_working_directory(samples, capsys, monkeypatch, tmp_path):
    rec = json.loads(samples.read_text().splitlines()[0])
    assert Path(rec["checkpoint"]).is_absolute()
    results = []
    for cwd in (samples.parent, Path("/")):
        monkeypatch.chdir(cwd)
        out = tmp_path / f"e{len(results)}.json"
        assert main(["eval", str(samples), "--out", str(out)]) == 0
        results.append(json.loads(out.read_text()))
    capsys.readouterr()
    assert "exact_ppl" in results[0]
    for key in ("exact_ppl", "entropy", "distinct_1"):
        assert results[0][key] == results[1][key]
    # an older file with a relative checkpoint path resolves beside the file, from anywhere
    old = samples.with_name("old.jsonl")
    lines = [json.loads(x) for x in samples.read_text().splitlines()]
    old.write_text("".join(json.dumps({**x, "checkpoint": os.path.relpath(x["checkpoint"], samples.parent)}) + "\n"
                           for x in lines))
    assert main(["eval", str(old), "--out", str(tmp_path / "e2.json")]) == 0
    assert json.loads((tmp_path / "e2.json").read_text())["exact_ppl"] == results[0]["exact_ppl"]
    # a checkpoint that cannot be found is an error, not silently different metrics
    gone = samples.with_name("gone.jsonl")
    gone.write_text("".join(json.dumps({**x, "checkpoint": "nowhere/ckpt"}) + "\n" for x in lines))
    code, _, err = cli(capsys, "eval", gone, "--out", tmp_path / "e3.json")
    assert code == 2 and "nowhere/ckpt" in err and "--tokenizer" in err


# ----------------------------------------------------------------------------------------------- bug 16
def test_bug16_export_of_a_gumbel_student_and_honest_kind_messages(tmp_path, tiny_tokenizer):
    from paradistill.checkpoint import save_checkpoint
    from paradistill.interop.hf_export import _check_kind, export_hf

    model = make_model(tiny_tokenizer.vocab_size, noise_embed="dense", extra_mode="add")
    save_checkpoint(tmp_path / "gd", model, "gd-mdlm", tiny_tokenizer, {"seq_len": 12})
    out = export_hf(tmp_path / "gd", tmp_path / "hf")
    assert json.loads((out / "paradistill.json").read_text())["kind"] == "gd-mdlm"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    with pytest.raises(UserError) as e:
        _check_kind("adjust", "x")
    assert "ADJUST" in str(e.value)
    with pytest.raises(UserError) as e:
        _check_kind("mystery", "x")
    assert "ADJUST" not in str(e.value) and "gd-mdlm" in str(e.value) and "sdtt" not in str(e.value)


# ------------------------------------------------------------------------------------ Ctrl-C, threads, logs
def test_interrupted_sample_keeps_finished_batches_and_never_mentions_resume(env, capsys, monkeypatch):
    import paradistill.generation as gen

    tmp, _ = env
    real, calls = gen.run_sampler, []

    def interrupt_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(gen, "run_sampler", interrupt_second)
    code, _, err = cli(capsys, "sample", tmp / "run", "--num", "6", "--batch-size", "2", "--steps", "2",
                       "--out", tmp / "k.jsonl")
    assert code == 130 and "--resume" not in err and "kept" in err
    rows = [json.loads(x) for x in (tmp / "k.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["interrupted"]
