"""The frame the methods plug into: the kind registry, typed recipe sections, typed generate options, typed
checkpoint records, and derived seeds."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import make_model
from paradistill.checkpoint import save_checkpoint
from paradistill.diffusion.bd3lm import BD3Config
from paradistill.distill.adjust import AdjustConfig
from paradistill.distill.gumbel import GumbelConfig, saved_gumbel_config
from paradistill.distill.sdtt import SDTTConfig
from paradistill.errors import UserError
from paradistill.generation import generate
from paradistill.kinds import KINDS, Kind, get_kind, kind_names, register_kind, require_kind
from paradistill.loader import load_checkpoint
from paradistill.recipes import load_recipe
from paradistill.seeding import STREAMS, derive_seed


def test_every_registered_kind_is_consistent():
    for kind in KINDS.values():
        assert kind.family in ("ar", "diffusion", "sampler")
        if kind.noise_conditioned:
            assert kind.base in KINDS and KINDS[kind.base].block == kind.block
        # exportable alone: as a ParadistillModel (export_as) or in a release's layout (LLaDA / Dream)
        assert (kind.export_as is None) == (kind.family == "sampler" or kind.layout is not None)
    assert kind_names(family="diffusion", noise_conditioned=False) == ("mdlm", "bd3lm", "llada", "dream")
    assert kind_names(block=True) == ("bd3lm", "gd-bd3lm")


def test_unknown_and_wrong_kinds_are_clear_errors():
    with pytest.raises(UserError, match="unknown model kind 'mdlm2'.*known kinds are ar, mdlm"):
        get_kind("mdlm2", where="checkpoint 'x'")
    with pytest.raises(UserError, match="holds a 'ar' model, but SDTT needs one of mdlm, bd3lm, gd-mdlm, gd-bd3lm"):
        require_kind("ar", "SDTT", "checkpoint 'x'", family="diffusion")
    with pytest.raises(ValueError, match="already registered differently"):
        register_kind(Kind("mdlm", "ar", "somewhere"))
    register_kind(get_kind("mdlm"))  # the same definition again is fine


def test_a_checkpoint_of_an_unknown_kind_is_refused(tmp_path, tiny_tokenizer):
    save_checkpoint(tmp_path / "ck", make_model(tiny_tokenizer.vocab_size), "diffusion-v9", tiny_tokenizer)
    with pytest.raises(UserError, match="unknown model kind 'diffusion-v9'"):
        load_checkpoint(tmp_path / "ck")


def test_recipe_sections_are_typed_and_validated():
    recipe = load_recipe("tiny", ["gumbel.topk=8", "sdtt.from_steps=32"])
    assert isinstance(recipe.gumbel, GumbelConfig) and recipe.gumbel.topk == 8
    assert isinstance(recipe.sdtt, SDTTConfig) and recipe.sdtt.from_steps == 32
    assert isinstance(recipe.adjust, AdjustConfig) and isinstance(recipe.bd3lm, BD3Config)
    with pytest.raises(UserError, match="gumbel: unknown key 'topkk' \\(did you mean 'topk'\\?\\)"):
        load_recipe("tiny", ["gumbel.topkk=8"])
    with pytest.raises(UserError, match="sdtt.divergence='kl'"):
        load_recipe("tiny", ["sdtt.divergence=kl"])
    with pytest.raises(UserError, match="sample.num=0"):
        load_recipe("tiny", ["sample.num=0"])


def test_generate_rejects_a_misspelt_option(tmp_path, tiny_tokenizer):
    save_checkpoint(tmp_path / "m", make_model(tiny_tokenizer.vocab_size), "mdlm", tiny_tokenizer, {"seq_len": 8})
    loaded = load_checkpoint(tmp_path / "m")
    with pytest.raises(UserError, match="unknown key 'kv_cahce' \\(did you mean 'kv_cache'\\?\\)"):
        generate(loaded, num=1, steps=2, progress=False, kv_cahce=False)
    out = generate(loaded, num=2, steps=2, progress=False, kv_cache=False)
    assert out.tokens.shape == (2, 8)


def test_checkpoint_settings_read_back_through_one_dataclass(tmp_path, tiny_tokenizer):
    model = make_model(tiny_tokenizer.vocab_size)
    save_checkpoint(tmp_path / "a", model, "mdlm", tiny_tokenizer, {"seq_len": 8})
    record = load_checkpoint(tmp_path / "a").record
    assert (record.seq_len, record.keep_bos, record.data_mode, record.block_size) == (8, True, "aligned", None)
    save_checkpoint(tmp_path / "g", model, "gd-mdlm", tiny_tokenizer, {"gumbel": {"noise": "gaussian"}})
    gm = saved_gumbel_config(load_checkpoint(tmp_path / "g").method)
    assert gm.noise == "gaussian" and gm.noise_temperature == GumbelConfig().noise_temperature
    save_checkpoint(tmp_path / "b", model, "mdlm", tiny_tokenizer, {"seq_len": "eight"})
    with pytest.raises(UserError, match="method.seq_len: expected an integer, got 'eight'"):
        load_checkpoint(tmp_path / "b").record
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    config["method"]["seqlen"] = 8
    (tmp_path / "a" / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="unknown key 'seqlen' \\(did you mean 'seq_len'\\?\\)"):
        load_checkpoint(tmp_path / "a").record


def test_derived_seeds_are_deterministic_and_independent():
    assert derive_seed(3, "step", 10, 0) == derive_seed(3, "step", 10, 0)
    seeds = {derive_seed(s, stream, k) for s in range(4) for stream in STREAMS for k in range(50)}
    assert len(seeds) == 4 * len(STREAMS) * 50  # no collisions across seeds, streams and keys
    assert all(0 <= s < 2**63 for s in seeds)
    a = torch.rand(1000, generator=torch.Generator().manual_seed(derive_seed(0, "step", 1)))
    b = torch.rand(1000, generator=torch.Generator().manual_seed(derive_seed(0, "step", 2)))
    assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1])) < 0.15
    with pytest.raises(KeyError):
        derive_seed(0, "no-such-stream")
