"""Scale-out (issue #9): DDP and FSDP over gloo on CPU reproduce one process with the same global batch,
resume under DDP/FSDP, sharded generation jobs, the dry-run plan, and clear errors for bad scale settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from paradistill.errors import UserError

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: 1 process, global batch 8 as 2 accumulation steps of 4 (= 2 ranks x 4 rows)."""
    from scale_worker import run_job

    out = tmp_path_factory.mktemp("one")
    return out, run_job(out, devices=1, strategy="auto", micro=4, steps=6)


def launch(out: Path, strategy: str) -> dict:
    """2 CPU processes (gloo) through Fabric's launcher, which re-runs the worker script once per rank."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("MASTER_PORT", None)
    proc = subprocess.run([sys.executable, str(HERE / "scale_worker.py"), str(out), "--devices", "2", "--strategy",
                           strategy, "--steps", "6"], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads((out / "result.json").read_text())


def check_same_run(one: dict, two: dict, one_dir: Path, two_dir: Path) -> None:
    from paradistill.loader import load_checkpoint

    assert two["world"] == 2 and one["world"] == 1 and two["steps"] == 6
    # same loss trajectory (global-batch mean logged by rank 0) and the same final weights, raw and EMA
    assert two["full"] == pytest.approx(one["full"], rel=1e-5, abs=1e-6)
    assert len(set(one["full"])) > 3  # it is a real trajectory, not a constant
    for ema in (False, True):
        a = load_checkpoint(one_dir / "full", use_ema=ema).model.state_dict()
        b = load_checkpoint(two_dir / "full", use_ema=ema).model.state_dict()
        assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    # stopped at step 3 and resumed: the same curve as the uninterrupted multi-process run
    assert two["split"] == pytest.approx(two["full"], rel=1e-6)
    # evaluation split over ranks and all-reduced equals the single-process value
    assert two["val"] == pytest.approx(one["val"], rel=1e-6)
    assert two["shard"] == one["shard"]
    # sampling for evaluation split over ranks: the same samples and per-batch NFE as one process
    assert two["samples"] == one["samples"] and two["sample_nfe"] == one["sample_nfe"] == [4, 4, 4]


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(tmp_path, one_process):
    one_dir, one = one_process
    two = launch(tmp_path, "ddp")
    check_same_run(one, two, one_dir, tmp_path)


@pytest.mark.slow
def test_fsdp_two_processes_match_one_process(tmp_path, one_process):
    """FSDP over gloo: Lightning refuses FSDP on CPU, torch's FSDP runs with device_id=cpu (CPUFSDPStrategy);
    parameters are sharded across the 2 ranks, checkpoints gather the full state on rank 0."""
    one_dir, one = one_process
    two = launch(tmp_path, "fsdp")
    check_same_run(one, two, one_dir, tmp_path)


def test_micro_batching_keeps_the_global_batch():
    from paradistill.train.distributed import micro_batching

    assert micro_batching(512, 8, 32) == (32, 2)  # 8 devices x 2 accumulation x 32
    assert micro_batching(512, 16, 32) == (32, 1)
    assert micro_batching(512, 1, 16) == (16, 32)
    assert micro_batching(64, 1, 24) == (16, 4)  # the accumulation divides the per-device batch
    assert micro_batching(8, 2, 0) == (4, 1)
    with pytest.raises(UserError, match="not divisible by 3 devices"):
        micro_batching(8, 3)


def test_shard_batches_single_process_order():
    from paradistill.train.distributed import shard_batches

    out = shard_batches(None, 7, 3, lambda b, start, size: torch.arange(start, start + size)[:, None] * 10 + b)
    assert out[:, 0].tolist() == [0, 10, 20, 31, 41, 51, 62]


def test_sample_cli_devices_1_equals_sharded_generation(tmp_path, one_process):
    from paradistill.cli import main

    one_dir, one = one_process
    out = tmp_path / "s.jsonl"
    assert main(["sample", str(one_dir / "full"), "--devices", "1", "--accelerator", "cpu", "--num", "5",
                 "--batch-size", "2", "--steps", "4", "--seed", "3", "--out", str(out), "--show", "0"]) == 0
    rows = [json.loads(line) for line in open(out)]
    from paradistill.sharded import generate_sharded
    from paradistill.loader import load_checkpoint

    ref = generate_sharded(load_checkpoint(one_dir / "full"), 5, None, seed=3, batch_size=2, steps=4)
    assert [r["tokens"] for r in rows] == ref.tokens.tolist()


def test_bad_scale_settings_give_clear_errors():
    from paradistill.recipes import load_recipe
    from paradistill.train.distributed import check_devices, cpu_count

    with pytest.raises(UserError, match=rf"--devices {cpu_count() + 1}: .* {cpu_count()} core"):
        check_devices(cpu_count() + 1, 1, "ddp", "32-true", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU is visible"):
            check_devices(1, 1, "ddp", "32-true", "gpu")
    with pytest.raises(UserError, match="16-mixed needs a CUDA GPU"):
        check_devices(1, 1, "ddp", "16-mixed", "cpu")
    with pytest.raises(UserError, match=r"train.strategy='dpp' is unknown \(did you mean 'ddp'\?\)"):
        load_recipe("tiny", ["train.strategy=dpp"])
    with pytest.raises(UserError, match=r"unknown key 'lrr' \(did you mean 'lr'\?\)"):
        load_recipe("tiny", ["train.lrr=0.1"])
    with pytest.raises(UserError, match=r"precision='bf61-mixed' is unknown \(did you mean 'bf16-mixed'\?\)"):
        load_recipe("tiny", ["train.precision=bf61-mixed"])


def test_cli_errors_name_the_input_and_the_fix(tmp_path, capsys):
    from paradistill.cli import main
    from paradistill.train.distributed import cpu_count

    assert main(["train", "mdlm", "--dry-run", "--devices", str(cpu_count() + 1), "--accelerator", "cpu"]) == 2
    assert f"pass --devices {cpu_count()} or fewer" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: invalid choice, lists auto/ddp/fsdp
        main(["train", "mdlm", "--strategy", "zero3"])
    assert "invalid choice: 'zero3'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  seq_len: 16\nmodel:\n  dimm: 32\n")
    assert main(["train", "mdlm", "--recipe", str(bad), "--dry-run"]) == 2
    assert "unknown key 'dimm' (did you mean 'dim'?)" in capsys.readouterr().err
    bad.write_text("sdtt:\n  from_step: 64\n")
    assert main(["train", "mdlm", "--recipe", str(bad), "--dry-run"]) == 2
    assert "unknown key 'from_step' (did you mean 'from_steps'?)" in capsys.readouterr().err


def test_dry_run_owt_small_matches_the_published_small_model(capsys):
    from paradistill.plan import make_plan
    from paradistill.recipes import load_recipe

    plan = make_plan("mdlm", load_recipe("owt-small"), bench=False)
    assert plan.vocab_size == 50258
    assert abs(plan.parameters - 170e6) / 170e6 < 0.10  # MDLM small on OWT: ~170M
    assert plan.tokens_per_step == 512 * 1024
    assert (plan.world, plan.grad_accum, plan.micro_batch) == (1, 32, 16)
    # the same count as instantiating the model (tie / untie, head bias, time conditioning all accounted for)
    lm1b = make_plan("mdlm", load_recipe("lm1b-small", ["train.devices=1"]), bench=False)
    assert lm1b.vocab_size == 30522 and 125e6 < lm1b.parameters < 140e6


def test_dry_run_cli_prints_the_plan(capsys):
    from paradistill.cli import main

    assert main(["train", "mdlm", "--recipe", "owt-small", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for needle in ("162,215,424 parameters", "524,288 tokens/step", "memory/dev", "per 1k steps", "TFLOP/s"):
        assert needle in out, out


@pytest.mark.slow
def test_cli_train_on_two_processes_logs_and_prints_once(tmp_path):
    """`paradistill train ... --devices 2 --strategy ddp`: Fabric relaunches the console script per rank; only
    rank 0 logs metrics, writes checkpoints and prints."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.setdefault("PARADISTILL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "paradistill.cli", "--threads", "1", "train", "mdlm", "--devices", "2", "--strategy",
           "ddp", "--precision", "32", "--out", str(out), "train.max_steps=4", "train.log_every=1",
           "train.eval_every=4", "train.eval_batches=2", "train.checkpoint_every=2", "model.dim=32",
           "model.n_layers=1", "model.n_heads=2", "data.num_tokens=60000"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("trained mdlm for 4 steps") == 1, proc.stdout
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4]
    assert json.loads((out / "latest.json").read_text()) == {"path": "checkpoints/step_0000004", "step": 4,
                                                             "final": True}
