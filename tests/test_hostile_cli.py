"""Hostile inputs through the real CLI (issue #25): every command, every class of the issue (values out of range
that --dry-run must catch, outputs that are files / inputs / existing results, run directories in the wrong
state, corrupt files, a full disk, bad thread counts, values silently taken as "default").

Each case runs `paradistill.cli.main` in-process and must exit with status 2, print exactly ONE stderr line
(`paradistill: error: ...`, no traceback, no progress bar before it) that names the bad input, and leave every
file that existed before byte-identical (the whole fixture tree is hashed before and after)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
from pathlib import Path

import pytest
from conftest import make_model

from paradistill.cli import main


@pytest.fixture(scope="module")
def d(tiny_run, tmp_path_factory):
    """A fixture folder: a trained run, samples, and broken things (see the names)."""
    from paradistill.checkpoint import save_checkpoint
    from paradistill.data.tokenizers import builtin_tokenizer

    root, _ = tiny_run
    d = tmp_path_factory.mktemp("hostile")
    run = d / "run"
    shutil.copytree(root / "mdlm", run)
    ckpt = run / json.loads((run / "latest.json").read_text())["path"]
    mp = pytest.MonkeyPatch()
    mp.setenv("PARADISTILL_CACHE", str(root / "cache"))
    try:
        assert main(["sample", str(run), "--num", "4", "--steps", "2", "--out", str(d / "samples.jsonl")]) == 0
        assert main(["eval", str(d / "samples.jsonl"), "--out", str(d / "e.json")]) == 0
    finally:
        mp.undo()
    lines = [json.loads(x) for x in (d / "samples.jsonl").read_text().splitlines()]
    shutil.copy(d / "samples.jsonl", run / "samples.jsonl")
    (d / "text.jsonl").write_text("".join(json.dumps({"text": x["text"]}) + "\n" for x in lines))
    (d / "gone.jsonl").write_text("".join(json.dumps({**x, "checkpoint": "nowhere/ckpt"}) + "\n" for x in lines))
    (d / "empty.jsonl").write_text("")
    (d / "afile").write_text("a plain file\n")
    for name, text in (("badlatest", "[1, 2]"), ("badlatest2", "{not json")):
        (d / name).mkdir()
        (d / name / "latest.json").write_text(text)
    shutil.copytree(run, d / "trunc_state")
    state = d / "trunc_state" / ckpt.relative_to(run) / "train_state.pt"
    state.write_bytes(state.read_bytes()[:200])
    shutil.copytree(ckpt, d / "noheads")
    config = json.loads((d / "noheads" / "config.json").read_text())
    del config["model"]["n_heads"]
    (d / "noheads" / "config.json").write_text(json.dumps(config))
    (d / "corrupt.ckpt").write_bytes(b"PK\x03\x04 this is not a checkpoint")
    (d / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    (d / "results").mkdir()
    (d / "results" / "bench.json").write_text("{}")
    (d / "report").mkdir()
    (d / "report" / "table.md").write_text("| old |\n")
    (d / "export_to").mkdir()
    (d / "export_to" / "keep.txt").write_text("keep")
    (d / "locked").mkdir()
    (d / "locked" / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                    "started": "now", "command": "a live job"}))
    (d / "bad.yaml").write_text("train:\n  log_every: 0\n")
    (d / "tiny").mkdir()  # a folder named like the built-in recipe must not hide it
    save_checkpoint(d / "ar", make_model(builtin_tokenizer().vocab_size), "ar", builtin_tokenizer(),
                    {"seq_len": 16, "keep_bos": True})
    return d


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


DRY = "train mdlm --dry-run"
CASES = [
    # (id, argv ({d}: fixture folder), regex the one-line message must match)
    # --- --dry-run validates every section up front
    ("dry log_every=0", f"{DRY} train.log_every=0", r"train\.log_every=0: must be >= 1"),
    ("dry beta1=1.5", f"{DRY} train.beta1=1.5", r"train\.beta1=1\.5: must be in \[0, 1\)"),
    ("dry beta2=1", f"{DRY} train.beta2=1", r"train\.beta2=1"),
    ("dry ema=2", f"{DRY} train.ema=2", r"train\.ema=2"),
    ("dry val_fraction=1.5", f"{DRY} data.val_fraction=1.5", r"data\.val_fraction=1\.5"),
    ("dry dropout=3", f"{DRY} model.dropout=3", r"model\.dropout=3"),
    ("dry n_heads=0", f"{DRY} model.n_heads=0", r"model\.n_heads=0"),
    ("dry mlp_ratio=0", f"{DRY} model.mlp_ratio=0", r"model\.mlp_ratio=0"),
    ("dry batch_size=0", f"{DRY} train.batch_size=0", r"train\.batch_size=0"),
    ("dry lr=0", f"{DRY} train.lr=0", r"train\.lr=0"),
    ("dry warmup=-1", f"{DRY} train.warmup_steps=-1", r"train\.warmup_steps=-1"),
    ("dry grad_clip=-1", f"{DRY} train.grad_clip=-1", r"train\.grad_clip=-1"),
    ("dry min_lr_ratio=2", f"{DRY} train.min_lr_ratio=2", r"train\.min_lr_ratio=2"),
    ("dry eval_batches=0", f"{DRY} train.eval_batches=0", r"train\.eval_batches=0"),
    ("dry keep_checkpoints=0", f"{DRY} train.keep_checkpoints=0", r"train\.keep_checkpoints=0"),
    ("dry nan_policy", f"{DRY} train.nan_policy=ignore", r"nan_policy='ignore'"),
    ("dry eps=1.5", f"{DRY} diffusion.eps=1.5", r"diffusion\.eps=1\.5"),
    ("dry schedule", f"{DRY} diffusion.schedule=linear", r"diffusion\.schedule='linear'"),
    ("dry num_tokens=0", f"{DRY} data.num_tokens=0", r"data\.num_tokens=0"),
    ("dry block_size=0", "train bd3lm --dry-run bd3lm.block_size=0", r"block_size"),
    ("dry sdtt.ema=1", f"{DRY} sdtt.ema=1", r"sdtt\.ema=1"),
    ("dry adjust.steps=0", f"{DRY} adjust.steps=0", r"adjust\.steps=0"),
    ("dry gumbel.topk=0", f"{DRY} gumbel.topk=0", r"gumbel\.topk=0"),
    ("dry recipe file", "train mdlm --dry-run --recipe {d}/bad.yaml", r"train\.log_every=0"),
    ("unknown recipe", "train mdlm --recipe tinyy", r"unknown recipe 'tinyy'"),
    # --- run directories
    ("train over a run", "train mdlm --out {d}/run", r"'{d}/run' already holds a training run.*--resume"),
    ("resume nothing", "train mdlm --resume --out {d}/nothing", r"'{d}/nothing' holds no run"),
    ("resume other kind", "train ar --resume --out {d}/run", r"'{d}/run' holds a 'mdlm' run, not 'ar'"),
    ("resume other recipe", "train mdlm --resume --out {d}/run --recipe lm1b-small", r"recipe 'tiny', not 'lm1b-small'"),
    ("resume other model.dim", "train mdlm --resume --out {d}/run {o} model.dim=64", r"model\.dim=32.*64"),
    ("resume locked run", "train mdlm --resume --out {d}/locked", r"'{d}/locked' is in use by process.*a live job"),
    ("train --out a file", "train mdlm --out {d}/afile", r"'{d}/afile' is a file"),
    ("train --out below a file", "train mdlm --out {d}/afile/run", r"'{d}/afile' is a file"),
    ("resume truncated state", "train mdlm --resume --out {d}/trunc_state {o}", r"train_state\.pt' is truncated or corrupt"),
    ("resume latest not object", "train mdlm --resume --out {d}/badlatest", r"badlatest/latest\.json' is corrupt"),
    ("sdtt --out teacher", "distill sdtt --teacher {d}/run --out {d}/run --from-steps 4 --to-steps 2",
     r"'{d}/run' is the run directory of --teacher"),
    ("sdtt resume nothing", "distill sdtt --teacher {d}/run --out {d}/nothing --resume --from-steps 4 --to-steps 2",
     r"'{d}/nothing' holds no run"),
    ("sdtt --out a file", "distill sdtt --teacher {d}/run --out {d}/afile --from-steps 4 --to-steps 2",
     r"'{d}/afile' is a file"),
    ("gumbel --out teacher", "distill gumbel --teacher {d}/ar --out {d}/ar", r"is the run directory of --teacher"),
    ("gumbel over a run", "distill gumbel --teacher {d}/ar --out {d}/run", r"'{d}/run' already holds a training run"),
    ("adjust --out base", "distill adjust --base {d}/run --out {d}/run", r"is the run directory of --base"),
    ("adjust --steps 0", "distill adjust --base {d}/run --out {d}/adj --steps 0", r"adjust\.steps=0"),
    ("adjust --trajectories 0", "distill adjust --base {d}/run --out {d}/adj --trajectories 0", r"trajectories=0"),
    # --- sample
    ("sample --length 0", "sample {d}/run --length 0 --out {d}/new.jsonl", r"--length 0: must be >= 2"),
    ("sample --length huge", "sample {d}/run --length 2000000 --out {d}/new.jsonl", r"--length 2000000 exceeds"),
    ("sample over samples", "sample {d}/run --out {d}/samples.jsonl", r"'{d}/samples\.jsonl' already exists.*--overwrite"),
    ("sample default out exists", "sample {d}/run --num 2", r"'{d}/run/samples\.jsonl' already exists"),
    ("sample --out a folder", "sample {d}/run --out {d}/results", r"'{d}/results' is a folder"),
    ("sample --out below a file", "sample {d}/run --out {d}/afile/s.jsonl", r"'{d}/afile' is a file"),
    ("sample infill no mask", "sample {d}/run --infill 'the cat' --out {d}/new.jsonl", r"has no \[MASK\]"),
    ("sample --num 0", "sample {d}/run --num 0 --out {d}/new.jsonl", r"num=0"),
    ("sample --block-size 0", "sample {d}/run --block-size 0 --out {d}/new.jsonl", r"--block-size 0: must be >= 1"),
    ("sample --batch-size 0", "sample {d}/run --batch-size 0 --out {d}/new.jsonl", r"batch_size=0"),
    ("sample latest not object", "sample {d}/badlatest --out {d}/new.jsonl", r"badlatest/latest\.json' is corrupt"),
    ("sample latest not JSON", "sample {d}/badlatest2 --out {d}/new.jsonl", r"badlatest2/latest\.json' is corrupt"),
    ("sample config lacks n_heads", "sample {d}/noheads --out {d}/new.jsonl", r"lacks model\.n_heads"),
    ("sample disk full", "sample {d}/run --num 2 --steps 2 --out {d}/samples.jsonl --overwrite",
     r"cannot write '{d}/samples\.jsonl': disk full"),
    # --- eval
    ("eval --out its input", "eval {d}/samples.jsonl --out {d}/samples.jsonl", r"'{d}/samples\.jsonl' is also an input"),
    ("eval over results", "eval {d}/samples.jsonl --out {d}/e.json", r"'{d}/e\.json' already exists"),
    ("eval --out a folder", "eval {d}/samples.jsonl --out {d}/results", r"'{d}/results' is a folder"),
    ("eval text without tokens", "eval {d}/text.jsonl --out {d}/t.json", r"text\.jsonl' has text but no 'tokens'"),
    ("eval checkpoint gone", "eval {d}/gone.jsonl --out {d}/g.json", r"'nowhere/ckpt' named in .*gone\.jsonl"),
    ("eval empty file", "eval {d}/empty.jsonl --out {d}/x.json", r"empty\.jsonl' is empty"),
    ("eval unknown metric", "eval {d}/samples.jsonl --metrics foo --out {d}/x.json", r"unknown metric.*foo"),
    ("eval generator --length 0", "eval generator --length 0 --out {d}/x.json", r"length=0"),
    ("eval --reference-num 0", "eval {d}/samples.jsonl --reference-num 0 --out {d}/x.json", r"--reference-num 0"),
    ("eval --judge-stride 0", "eval {d}/samples.jsonl --judge-stride 0 --out {d}/x.json", r"--judge-stride 0"),
    ("eval --val-batches 0", "eval {d}/samples.jsonl --val-batches 0 --out {d}/x.json", r"--val-batches 0"),
    ("eval --mauve-buckets x", "eval {d}/samples.jsonl --mauve-buckets x --out {d}/x.json", r"--mauve-buckets x"),
    ("eval generator --num 0", "eval generator --num 0 --out {d}/x.json", r"num=0"),
    ("eval disk full", "eval {d}/samples.jsonl --out {d}/e.json --overwrite", r"cannot write '{d}/e\.json': disk full"),
    # --- data
    ("data --num-tokens 0", "data prepare --num-tokens 0", r"--num-tokens 0: must be >= 1"),
    ("data --num-docs 0", "data prepare --num-docs 0", r"--num-docs 0"),
    ("data --val-fraction 1.5", "data prepare --val-fraction 1.5", r"--val-fraction 1\.5"),
    ("data --seq-len 1", "data prepare --seq-len 1", r"--seq-len 1"),
    ("data missing corpus", "data prepare --corpus {d}/missing.txt", r"missing\.txt"),
    ("data info missing", "data info {d}/nowhere", r"nowhere"),
    # --- bench, report, export, recipes, quickstart
    ("bench --methods foo", "bench --methods foo --out {d}/b", r"--methods foo: unknown method 'foo'"),
    ("bench --lengths 0", "bench --lengths 0 --out {d}/b", r"--lengths \[0\]"),
    ("bench over results", "bench --out {d}/results", r"'{d}/results' already holds bench\.json.*--overwrite"),
    ("bench --out a file", "bench --out {d}/afile", r"'{d}/afile' is a file"),
    ("report over report", "report {d} --out {d}/report", r"'{d}/report' already holds table\.md"),
    ("report --out a file", "report {d} --out {d}/afile", r"'{d}/afile' is a file"),
    ("export corrupt .ckpt", "export {d}/corrupt.ckpt --from mdlm --to {d}/x --tokenizer builtin",
     r"corrupt\.ckpt' cannot be read as torch weights"),
    ("export corrupt safetensors", "export {d}/corrupt.safetensors --from mdlm --to {d}/x --tokenizer builtin",
     r"corrupt\.safetensors' is truncated or corrupt"),
    ("export onto a folder", "export {d}/run --to {d}/export_to", r"'{d}/export_to' exists and is not an empty folder"),
    ("export onto a file", "export {d}/run --to {d}/afile", r"'{d}/afile' exists and is not an empty folder"),
    ("export onto itself", "export {d}/run --to {d}/run", r"'{d}/run' is the source"),
    ("export config lacks n_heads", "export {d}/noheads --to {d}/x", r"lacks model\.n_heads"),
    ("recipes --show unknown", "recipes --show tinny", r"unknown recipe 'tinny'"),
    ("quickstart --out a file", "quickstart --out {d}/afile", r"'{d}/afile' is a file"),
    ("quickstart bad override", "quickstart --out {d}/qs train.ema=2", r"train\.ema=2"),
    ("quickstart missing corpus", "quickstart --out {d}/qs --corpus {d}/missing.txt", r"missing\.txt"),
    ("quickstart negative --check-samples", "quickstart --out {d}/qs --check-samples -1", r"--check-samples=-1"),
    # --- threads: before or after the command; never silently "default"
    ("--threads -1", "--threads -1 recipes", r"--threads -1: must be >= 1"),
    ("--threads 0", "--threads 0 recipes", r"--threads 0: must be >= 1"),
    ("--threads 0 after", "sample {d}/run --threads 0 --out {d}/new.jsonl", r"--threads 0: must be >= 1"),
    ("--threads -1 after", "train mdlm --dry-run --threads -1", r"--threads -1"),
]
DISK_FULL = {"sample disk full", "eval disk full"}


@pytest.mark.parametrize("case,argv,pattern", CASES, ids=[c[0] for c in CASES])
def test_hostile_input(d, tiny_run, capsys, monkeypatch, case, argv, pattern):
    monkeypatch.setenv("PARADISTILL_CACHE", str(tiny_run[0] / "cache"))
    monkeypatch.chdir(d)  # also checks that the folder `tiny` does not hide the built-in recipe
    if case in DISK_FULL:
        import paradistill.io as pio

        def full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(pio.os, "fsync", full)
    before = tree_hashes(d)
    code = main(shlex.split(argv.format(d=d, o=" ".join(tiny_run[1]))))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    if case in DISK_FULL:  # the disk fills up after the work: its progress lines come first
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("paradistill: error: "), err
    assert re.search(pattern.format(d=re.escape(str(d))), lines[0]), lines[0]
    after = tree_hashes(d)
    changed = [f for f in before if after.get(f) != before[f]]
    assert not changed, f"files changed or removed: {changed}"
    assert not [f for f in after if f not in before and not f.startswith("cache")], "new files left behind"


def test_the_table_covers_every_command_and_enough_cases():
    from paradistill.cli import COMMANDS

    assert len(CASES) >= 60
    first = {shlex.split(argv)[0] if not argv.startswith("--") else shlex.split(argv)[2] for _, argv, _ in CASES}
    assert set(COMMANDS) <= first, set(COMMANDS) - first
