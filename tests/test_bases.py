"""The bases shipped in the package (src/paradistill/bases/): `builtin:` ids resolve offline wherever a checkpoint
is taken, the files match the sha256 of the manifest, they load as the kinds they claim and fit the 8 MiB budget."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

import paradistill
from paradistill.errors import UserError

NAMES = ["ar", "bd3lm-b16", "bd3lm-b4", "mdlm"]
KINDS = {"ar": "ar", "mdlm": "mdlm", "bd3lm-b4": "bd3lm", "bd3lm-b16": "bd3lm"}
FOLDER = Path(paradistill.__file__).parent / "bases"


def test_builtin_ids_resolve_offline(monkeypatch):
    from paradistill.bases import names, resolve
    from paradistill.loading import resolve as resolve_ref

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert names() == NAMES
    for name in NAMES:
        path = resolve(f"builtin:{name}")
        assert path == FOLDER / name and (path / "config.json").is_file()
        assert resolve(name) == path and resolve_ref(f"builtin:{name}") == path  # the loading scheme is the same


def test_unknown_builtin_id_is_one_line_listing_the_names():
    from paradistill.loading import resolve

    with pytest.raises(UserError) as err:
        resolve("builtin:gpt5")
    msg = str(err.value)
    assert "builtin:gpt5" in msg and all(f"builtin:{n}" in msg for n in NAMES) and "\n" not in msg


def test_shipped_files_match_their_recorded_hashes():
    manifest = json.loads((FOLDER / "manifest.json").read_text())
    assert sorted(manifest["bases"]) == NAMES
    for name in NAMES:
        files = manifest["bases"][name]["files"]
        on_disk = sorted(str(p.relative_to(FOLDER / name)) for p in (FOLDER / name).rglob("*") if p.is_file())
        assert sorted(files) == on_disk, name  # every shipped file is recorded and present
        for rel, rec in files.items():
            data = (FOLDER / name / rel).read_bytes()
            assert hashlib.sha256(data).hexdigest() == rec["sha256"], f"{name}/{rel}"
            assert len(data) == rec["bytes"]
        assert files["model.safetensors"]["bytes"] <= 8 * 1024 * 1024


def test_verify_names_a_tampered_file(tmp_path, monkeypatch):
    from paradistill import bases

    copy = tmp_path / "bases"
    shutil.copytree(FOLDER, copy, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    monkeypatch.setattr(bases, "folder", lambda: copy)
    assert bases.verify("builtin:mdlm") == []
    with open(copy / "mdlm" / "config.json", "a") as f:
        f.write(" ")
    (copy / "mdlm" / "tokenizer" / "tokenizer_config.json").unlink()
    assert bases.verify("builtin:mdlm") == ["config.json", "tokenizer/tokenizer_config.json"]


def test_missing_files_of_a_listed_base_say_reinstall(tmp_path, monkeypatch):
    from paradistill import bases

    copy = tmp_path / "bases"
    shutil.copytree(FOLDER, copy, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    (copy / "ar" / "model.safetensors").unlink()
    monkeypatch.setattr(bases, "folder", lambda: copy)
    with pytest.raises(UserError, match="reinstall"):
        bases.resolve("builtin:ar")


@pytest.mark.parametrize("name", NAMES)
def test_builtin_bases_load_as_their_kind(name):
    from paradistill import api

    loaded = api.load(f"builtin:{name}")
    assert loaded.kind == KINDS[name]
    assert loaded.tokenizer.vocab_size == loaded.model.cfg.vocab_size
    assert loaded.config["base"]["name"] == name
    rec = json.loads((FOLDER / "manifest.json").read_text())["bases"][name]
    assert loaded.config["base"]["step"] == rec["step"] and rec["kind"] == loaded.kind
    if name.startswith("bd3lm"):
        assert loaded.method["block_size"] == int(name.split("-b")[1])


def test_builtin_ar_is_a_teacher_and_an_adaptation_source():
    from paradistill.methods.base import load_ar_backbone
    from paradistill.methods.teachers import load_teacher

    teacher = load_teacher("builtin:ar")
    assert teacher.vocab_size > 0
    assert load_ar_backbone("builtin:ar").cfg.n_layers >= 1


def test_sample_builtin_writes_outside_the_package(tmp_path, monkeypatch):
    """`paradistill sample builtin:mdlm` on a fresh install: samples go to runs/hub/builtin_mdlm/, not into the
    (possibly read-only) package folder."""
    from paradistill.cli import main

    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in (FOLDER / "mdlm").iterdir())
    assert main(["--threads", "1", "sample", "builtin:mdlm", "--num", "2", "--steps", "4", "--show", "0"]) == 0
    rows = (tmp_path / "runs" / "hub" / "builtin_mdlm" / "samples.jsonl").read_text().splitlines()
    assert len(rows) == 2
    assert sorted(p.name for p in (FOLDER / "mdlm").iterdir()) == before


def test_adjust_trains_on_a_builtin_base(tmp_path):
    """`paradistill distill adjust --base builtin:mdlm`: the base resolves offline, the sampler's record points
    at the shipped folder, and the checkpoint loads back on that base."""
    from paradistill import api
    from paradistill.bases import resolve

    recipe = api.load_recipe("tiny", ["adjust.trajectories=8", "adjust.traj_batch_size=8", "adjust.batch_size=2",
                                      "adjust.steps=1", "adjust.val_fraction=0.25", "adjust.eval_batches=1"])
    api.distill_adjust("builtin:mdlm", recipe, tmp_path / "adjust", progress=False)
    loaded = api.load(tmp_path / "adjust")
    assert Path(loaded.method["base"]) == resolve("builtin:mdlm").resolve()
    assert api.generate(loaded, 2, sampler="adjust", tokens_per_pass=2, mode="adjust",
                        progress=False).tokens.shape[0] == 2


def test_packing_a_run_that_continued_a_base_keeps_the_chain(tmp_path):
    """experiments.bases.pack: a run started with --init builtin:mdlm is packed with the base it continued (its
    steps, validation loss and weights' sha256) and the total steps; an unfinished run is refused."""
    from experiments.bases.pack import pack_one
    from paradistill import api
    from paradistill.bases import manifest

    recipe = api.load_recipe("tiny", ["train.max_steps=2", "train.eval_every=2", "train.eval_batches=1",
                                      "train.checkpoint_every=2", "data.num_tokens=4096"])
    api.train_model("mdlm", recipe, tmp_path / "run", init="builtin:mdlm", progress=False, threads=1)
    previous = manifest()["bases"]["mdlm"]
    rec = pack_one("mdlm", tmp_path / "run", tmp_path / "dest", previous)
    config = json.loads((tmp_path / "dest" / "mdlm" / "config.json").read_text())
    chain = config["base"]["continued_from"]
    assert chain == {"id": "builtin:mdlm", "step": previous.get("total_steps", previous["step"]),
                     "val_loss": previous["val_loss"], "sha256": previous["files"]["model.safetensors"]["sha256"]}
    assert rec["total_steps"] == config["base"]["total_steps"] == chain["step"] + 2 and rec["step"] == 2
    assert rec["files"]["model.safetensors"]["sha256"] == hashlib.sha256(
        (tmp_path / "dest" / "mdlm" / "model.safetensors").read_bytes()).hexdigest()
    api.train_model("mdlm", recipe, tmp_path / "run2", init=str(tmp_path / "run"), progress=False, threads=1)
    rec2 = pack_one("mdlm", tmp_path / "run2", tmp_path / "dest2")  # continued from a run folder (train.sh's stage 2)
    assert rec2["continued_from"]["id"] == str(tmp_path / "run") and rec2["continued_from"]["step"] == 2
    assert rec2["total_steps"] == 4
    latest = tmp_path / "run" / "latest.json"
    latest.write_text(json.dumps({**json.loads(latest.read_text()), "final": False}))
    with pytest.raises(SystemExit, match="has not finished"):
        pack_one("mdlm", tmp_path / "run", tmp_path / "dest", previous)
