"""Issue #25's mechanisms behind "nothing lost around a run", tested on their own: Ctrl-C hints, the default
thread count, plain progress lines off a terminal, atomic writes, output guards, a metrics log torn by a kill, and the
up-front validation of every built-in recipe. The per-bug regressions are in test_run_safety.py."""

from __future__ import annotations

import errno
import json
import os

import pytest
import torch

from paradistill.cli import main
from paradistill.errors import UserError


def test_ctrl_c_hints_match_the_command():
    from paradistill.cli import INTERRUPTED

    for command, hint in INTERRUPTED.items():
        assert ("--resume" in hint) == (command in ("train", "distill")), command


def test_threads_after_the_command_and_default_never_oversubscribes(monkeypatch, capsys):
    from paradistill.cpus import available_cpus, default_threads

    before = torch.get_num_threads()
    try:
        assert main(["recipes", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
        torch.set_num_threads(64)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert default_threads() == min(64, available_cpus()) <= len(os.sched_getaffinity(0))
        monkeypatch.setattr(os, "getloadavg", lambda: (1e6, 0, 0))  # a saturated machine: one thread
        assert available_cpus() == 1
    finally:
        torch.set_num_threads(before)
    capsys.readouterr()


def test_progress_bars_write_plain_lines_when_not_a_terminal():
    import io

    from tqdm import tqdm

    from paradistill.console import LineStream

    sink = io.StringIO()
    stream = LineStream(sink, interval=3600)
    for _ in tqdm(range(50), file=stream, mininterval=0, desc="work"):
        pass
    print("done", file=stream)
    stream.close_pending()
    text = sink.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0].startswith("work:   0%") and "50/50" in lines[-2] and lines[-1] == "done"
    assert len(lines) <= 4  # rate-limited: no frame per iteration


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    import paradistill.io as pio

    f = tmp_path / "a.txt"
    pio.atomic_write_text(f, "old")

    def boom(*a):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pio.os, "replace", boom)
    with pytest.raises(UserError, match=r"disk full"):
        pio.atomic_write_text(f, "new")
    assert f.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_guard_output(tmp_path):
    from paradistill.io import guard_output

    (tmp_path / "x").write_text("1")
    with pytest.raises(UserError, match="already exists"):
        guard_output(tmp_path / "x")
    guard_output(tmp_path / "x", overwrite=True)
    with pytest.raises(UserError, match="also an input"):
        guard_output(tmp_path / "x", overwrite=True, inputs=[tmp_path / "x"])
    with pytest.raises(UserError, match="is a file, not a folder"):
        guard_output(tmp_path / "x" / "y")


def test_resume_survives_a_metrics_line_torn_by_a_kill(tmp_path):
    from paradistill.train.loop import MetricsLog

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.9}\n{"step": 3, "lo')
    (tmp_path / "metrics.csv").write_text("step,kind,name,value\n1,train,loss,2.0\n2,train,loss,1.9\n3,tr")
    MetricsLog(tmp_path, True).truncate(2)
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert (tmp_path / "metrics.csv").read_text().splitlines()[-1] == "2,train,loss,1.9"


def test_every_builtin_recipe_passes_the_up_front_validation():
    """The model section is validated with a stand-in vocabulary that must not reject a real recipe
    (e.g. model.noise_vocab=50257 of the paper-scale Gumbel recipes)."""
    from paradistill.recipes import load_recipe, recipe_names

    for name in recipe_names():
        assert load_recipe(name).name == name
