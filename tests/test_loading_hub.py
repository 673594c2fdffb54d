"""hf:ORG/NAME[@REVISION] references resolved offline from a huggingface_hub cache the test builds, and the
one-line errors of bad references and inputs."""

from __future__ import annotations

import json

import pytest
import torch

from loading_fixtures import (LENGTH, VOCAB, add_to_hub_cache, bd3lm_hub_config, dit_state, mdlm_hub_config,
                              reference_logits, save_safetensors, sdtt_config)
from paradistill.errors import UserError


@pytest.fixture
def hub(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PARADISTILL_HOME", str(tmp_path / "home"))
    return cache


def _repo_files(folder):
    return {p.name: p for p in folder.iterdir() if p.is_file()}


def test_hub_mdlm_and_revisions(tmp_path, hub):
    from paradistill import loading

    a, b = dit_state(10), dit_state(11)
    save_safetensors(a, tmp_path / "r1", config=sdtt_config())
    save_safetensors(b, tmp_path / "r2", prefix="backbone.backbone.", config=sdtt_config())
    add_to_hub_cache(hub, "jdeschena/sdtt", _repo_files(tmp_path / "r1"), revision="baselines_kld_step_10000")
    commit = add_to_hub_cache(hub, "jdeschena/sdtt", _repo_files(tmp_path / "r2"), revision="teacher_1M_sm")
    x = torch.randint(0, VOCAB - 1, (2, LENGTH))
    for ref, state in (("hf:jdeschena/sdtt@baselines_kld_step_10000", a), ("hf:jdeschena/sdtt@teacher_1M_sm", b),
                       (f"hf:jdeschena/sdtt@{commit}", b)):
        loaded = loading.load(ref)
        assert loaded.method["source"] == ref and loaded.method["source_format"] == "sdtt"
        with torch.no_grad():
            ours = loaded.model(x, attn="bidirectional").logits
        ref_logits = reference_logits(state, x)
        assert (ours - ref_logits).abs().max() <= 1e-4 * ref_logits.abs().max()
    with pytest.raises(UserError) as e:
        loading.load("hf:jdeschena/sdtt@scaling_400k_md_step_70000")
    msg = str(e.value)
    assert "\n" not in msg and "scaling_400k_md_step_70000" in msg and "teacher_1M_sm" in msg


def test_hub_bd3lm_main_and_file_in_repo(tmp_path, hub):
    from paradistill import loading

    save_safetensors(dit_state(12), tmp_path / "b", config=bd3lm_hub_config(4))
    add_to_hub_cache(hub, "kuleshov-group/bd3lm-owt-block_size4", _repo_files(tmp_path / "b"))
    loaded = loading.load("hf:kuleshov-group/bd3lm-owt-block_size4")
    assert loaded.kind == "bd3lm" and loaded.method["block_size"] == 4
    # a file inside a repository (the Gumbel-distill repo holds several .ckpt files)
    path = loading.resolve("hf:kuleshov-group/bd3lm-owt-block_size4/config.json")
    assert json.loads(path.read_text())["block_size"] == 4


def test_gpt2_tokenizer_from_the_hub_cache(tmp_path, hub):
    """A DiT repo without tokenizer files takes GPT-2's from the cache (hf:openai-community/gpt2)."""
    from loading_fixtures import write_gpt2_style_tokenizer
    from paradistill import loading

    save_safetensors(dit_state(13), tmp_path / "m", config=mdlm_hub_config(), tokenizer=False)
    add_to_hub_cache(hub, "kuleshov-group/mdlm-owt", _repo_files(tmp_path / "m"))
    write_gpt2_style_tokenizer(tmp_path / "gpt2")
    add_to_hub_cache(hub, "openai-community/gpt2", _repo_files(tmp_path / "gpt2"))
    loaded = loading.load("hf:kuleshov-group/mdlm-owt")
    assert loaded.tokenizer.vocab_size == VOCAB and loaded.tokenizer.mask_id == VOCAB - 1


def test_hub_id_absent_offline(hub):
    from paradistill import loading

    with pytest.raises(UserError) as e:
        loading.load("hf:kuleshov-group/mdlm-owt")
    msg = str(e.value)
    assert "\n" not in msg and "hf:kuleshov-group/mdlm-owt" in msg and "HF_HUB_OFFLINE" in msg and "download" in msg


def test_unknown_format_lists_keys_and_formats(tmp_path, hub):
    from paradistill import loading

    d = tmp_path / "weird"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"hello": 1, "layers": 3}))
    from safetensors.torch import save_file

    save_file({"encoder.weight": torch.zeros(2, 2)}, str(d / "model.safetensors"))
    with pytest.raises(UserError) as e:
        loading.load(d)
    msg = str(e.value)
    assert "\n" not in msg and str(d) in msg and "hello" in msg and "encoder.weight" in msg
    for name in ("paradistill", "mdlm", "bd3lm", "sdtt", "gumbel", "hf-causal-lm"):
        assert name in msg


def test_malformed_hub_reference(hub):
    from paradistill import loading

    with pytest.raises(UserError) as e:
        loading.load("hf:a b c")
    assert "malformed" in str(e.value) and "hf:ORG/NAME" in str(e.value)


def test_expect_kinds_names_the_reference(tmp_path, hub):
    from paradistill import loading

    save_safetensors(dit_state(14), tmp_path / "m", config=mdlm_hub_config())
    with pytest.raises(UserError) as e:
        loading.load(tmp_path / "m", expect_kinds=("ar",))
    assert str(tmp_path / "m") in str(e.value) and "'mdlm'" in str(e.value)


def test_time_conditioned_checkpoint_to_block_sampler(tmp_path, hub):
    """BD3-LM's block sampler takes one time per block; a time-conditioned checkpoint is refused by name."""
    from paradistill import api, loading

    save_safetensors(dit_state(15), tmp_path / "tc", config=bd3lm_hub_config(4, time_conditioning=True))
    loaded = loading.load(tmp_path / "tc")
    assert loaded.model.cfg.time_conditioning
    with pytest.raises(UserError) as e:
        api.generate(loaded, 1, length=LENGTH, steps=2, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "tc") in msg and "time-conditioned" in msg


def test_cli_sample_and_eval_by_hub_id(tmp_path, hub, monkeypatch):
    from paradistill.cli import main

    save_safetensors(dit_state(16), tmp_path / "m", config=mdlm_hub_config())
    add_to_hub_cache(hub, "kuleshov-group/mdlm-owt", _repo_files(tmp_path / "m"))
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "hf:kuleshov-group/mdlm-owt", "--num", "2", "--steps", "2", "--length", str(LENGTH),
                 "--batch-size", "2"]) == 0
    out = tmp_path / "runs" / "hub" / "hf_kuleshov-group_mdlm-owt" / "samples.jsonl"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 and len(rows[0]["tokens"]) == LENGTH


def test_schemes_and_formats_are_registries(tmp_path, hub):
    """Another engineer adds `builtin:NAME` with one resolver and a format with one registration."""
    from paradistill import loading
    from paradistill.loading import refs, registry

    save_safetensors(dit_state(17), tmp_path / "zoo" / "tiny-mdlm", config=mdlm_hub_config())
    loading.register_scheme("builtin", lambda name: tmp_path / "zoo" / name)
    marker = tmp_path / "custom"
    marker.mkdir()
    (marker / "MARKER").write_text("x")
    seen = []
    custom = loading.CheckpointFormat("custom", lambda p: (p / "MARKER").is_file(),
                                      lambda p, req: seen.append(req.ref) or "loaded", "a test format")
    try:
        assert loading.load("builtin:tiny-mdlm").kind == "mdlm"
        loading.formats()
        loading.register_format(custom)
        assert loading.load(marker) == "loaded" and seen == [str(marker)]
        with pytest.raises(UserError, match="unknown option"):
            loading.load("builtin:tiny-mdlm", blocksize=4)
    finally:
        refs.SCHEMES.pop("builtin", None)
        registry.FORMATS[:] = [f for f in registry.FORMATS if f.name != "custom"]
