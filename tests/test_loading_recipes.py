"""The paper-scale recipes: their dry-run parameter counts match the published models (within 2%), and each
completes a few steps end to end on CPU with tiny replicas of the published checkpoints in a hub cache (same
references, same data conventions, same code path)."""

from __future__ import annotations

import json

import pytest
import torch

from loading_fixtures import (BLOCKS, COND, D, HEADS, LENGTH, add_to_hub_cache, bd3lm_hub_config, dit_state,
                              mdlm_hub_config, save_safetensors, write_gpt2_style_tokenizer)

RECIPES = {"sdtt-owt": ("sdtt", 169.6e6), "gd-owt-mdlm": ("gumbel", None), "gd-owt-bd3lm": ("gumbel-bd3lm", None)}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_dry_run_parameter_counts(name):
    from paradistill import api
    from paradistill.loading.dit import dit_parameter_count
    from paradistill.plan import make_plan

    kind, stated = RECIPES[name]
    recipe = api.load_recipe(name)
    plan = make_plan(kind, recipe, bench=False)
    published = dit_parameter_count(50258, 768, 12, 128, gumbel=kind.startswith("gumbel"))
    assert abs(plan.parameters - published) / published < 0.02
    if stated:  # the number REFERENCE-MODELS states for the small DiT
        assert abs(plan.parameters - stated) / stated < 0.02
    assert plan.tokens_per_step == recipe.train.batch_size * 1024
    assert recipe.data.mode in ("wrap-mdlm", "wrap-raw") and recipe.data.val_last_docs == 100000


@pytest.fixture
def tiny_hub(tmp_path, monkeypatch):
    """Tiny replicas of mdlm-owt, bd3lm-owt-block_size4 and GPT-2 under their hub names, offline."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PARADISTILL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PARADISTILL_CACHE", str(tmp_path / "data-cache"))
    files = lambda d: {p.name: p for p in d.iterdir() if p.is_file()}  # noqa: E731
    save_safetensors(dit_state(31), tmp_path / "mdlm", config=mdlm_hub_config(), tokenizer=False)
    add_to_hub_cache(cache, "kuleshov-group/mdlm-owt", files(tmp_path / "mdlm"))
    save_safetensors(dit_state(32), tmp_path / "bd3", config=bd3lm_hub_config(4), tokenizer=False)
    add_to_hub_cache(cache, "kuleshov-group/bd3lm-owt-block_size4", files(tmp_path / "bd3"))
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=257, n_positions=64, n_embd=16, n_layer=1, n_head=2,
                                      bos_token_id=256, eos_token_id=256))
    gpt2.save_pretrained(tmp_path / "gpt2")
    write_gpt2_style_tokenizer(tmp_path / "gpt2")
    snap = cache / "models--openai-community--gpt2" / "snapshots"
    add_to_hub_cache(cache, "openai-community/gpt2", files(tmp_path / "gpt2"))
    text = tmp_path / "owt.txt"
    words = "the cat sat on a mat and then it ran far away from home".split()
    g = torch.Generator().manual_seed(0)
    docs = [" ".join(words[int(i)] for i in torch.randint(0, len(words), (40,), generator=g)) for _ in range(30)]
    text.write_text("\n\n".join(docs))
    return {"corpus": str(text), "tokenizer": f"gpt2:{next(snap.iterdir())}"}


def _tiny_overrides(hub, **extra):
    base = {"data.corpus": hub["corpus"], "data.tokenizer": hub["tokenizer"], "data.seq_len": LENGTH,
            "data.val_last_docs": 3, "model.dim": D, "model.n_layers": BLOCKS, "model.n_heads": HEADS,
            "model.cond_dim": COND, "model.dropout": 0.0, "train.max_steps": 2, "train.batch_size": 2,
            "train.micro_batch_size": 2, "train.precision": "32", "train.strategy": "auto",
            "train.eval_every": 2, "train.eval_batches": 1, "train.checkpoint_every": 2, "train.log_every": 1,
            "train.warmup_steps": 1, **extra}
    return [f"{k}={v}" for k, v in base.items()]


def test_sdtt_owt_tiny_end_to_end(tmp_path, tiny_hub):
    from paradistill.cli import main

    args = ["distill", "sdtt", "--recipe", "sdtt-owt", "--out", str(tmp_path / "sdtt")]
    overrides = _tiny_overrides(tiny_hub, **{"sdtt.from_steps": 8, "sdtt.to_steps": 2, "sdtt.steps_per_round": 1,
                                             "sdtt.warmup_steps": 1})
    assert main(args + overrides) == 0
    summary = json.loads((tmp_path / "sdtt" / "sdtt.json").read_text())
    assert [r["student_steps"] for r in summary["rounds"]] == [4, 2]
    from paradistill import api

    student = api.load(tmp_path / "sdtt")
    assert student.kind == "mdlm" and student.model.cfg.adaln
    assert student.method["source"] == "hf:kuleshov-group/mdlm-owt"
    res = api.generate(student, 2, length=LENGTH, steps=2, progress=False)
    assert res.tokens.shape == (2, LENGTH)


@pytest.mark.parametrize("name", ["gd-owt-mdlm", "gd-owt-bd3lm"])
def test_gd_recipes_tiny_end_to_end(tmp_path, tiny_hub, name):
    from paradistill import api
    from paradistill.cli import main

    out = tmp_path / name
    overrides = _tiny_overrides(tiny_hub)
    assert main(["distill", "gumbel", "--recipe", name, "--out", str(out)] + overrides) == 0
    student = api.load(out)
    assert student.kind == ("gd-bd3lm" if name.endswith("bd3lm") else "gd-mdlm")
    assert student.model.cfg.noise_vocab == -1 and student.model.noise_embed.weight.shape == (257, D)
    if name.endswith("bd3lm"):  # initialised from the (tiny) bd3lm-owt-block_size4
        assert student.method["init"] == "hf:kuleshov-group/bd3lm-owt-block_size4"
    res = api.generate(student, 2, length=LENGTH, steps=2, progress=False)
    assert res.tokens.shape == (2, LENGTH)


def test_mdlm_wrap_conventions():
    """wrap-mdlm: rows BOS + (L-2 tokens of the `doc EOS` stream) + EOS; wrap-raw: the `doc EOS` stream cut every L."""
    import numpy as np

    from paradistill.data.packing import pack_wrap_mdlm, pack_wrap_raw

    bos = eos = 9
    docs = [np.array([bos, 1, 2, 3, eos], np.uint32), np.array([bos, 4, 5, eos], np.uint32),
            np.array([bos, 6, 7, 8, 1, 2, eos], np.uint32)]
    stream = [1, 2, 3, 9, 4, 5, 9, 6, 7, 8, 1, 2, 9]  # MDLM: each doc + EOS, no per-doc BOS
    rows = pack_wrap_mdlm(docs, 6, pad_id=0)
    assert rows.tolist() == [[9] + stream[0:4] + [9], [9] + stream[4:8] + [9], [9] + stream[8:12] + [9]]
    assert pack_wrap_raw(docs, 4, pad_id=0).tolist() == [stream[0:4], stream[4:8], stream[8:12]]


def test_val_last_docs_split(tmp_path):
    from paradistill.data.packing import prepare_data
    from loading_fixtures import write_gpt2_style_tokenizer

    write_gpt2_style_tokenizer(tmp_path / "tok")
    (tmp_path / "c.txt").write_text("\n\n".join(f"document number {i} " + "x" * 20 for i in range(10)))
    data = prepare_data(str(tmp_path / "c.txt"), f"gpt2:{tmp_path / 'tok'}", 8, mode="wrap-raw",
                        cache_dir=tmp_path / "cache", val_last_docs=2, progress=False)
    assert data.meta["counts"]["val_docs"] == 2 and data.meta["counts"]["train_docs"] == 8
    text = data.tokenizer.decode(data.val.reshape(-1).tolist())
    assert "number 8" in text and "number 0" not in text
