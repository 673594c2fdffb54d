"""LLaDA / Dream through the pipeline: `train mdlm model.arch=...`, `export --format ...` (the published layout),
loading it back by path, sampling from the CLI, ADJUST on a replica (K = 1 is sequential sampling exactly; an
adapter refuses another base), and the slow end-to-end run (K = 4 ADJUST between marginal and sequential)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import reference_sequential

from paradistill.checkpoint import save_checkpoint
from paradistill.distill.adjust import SamplerConfig, SamplerLayer
from paradistill.distill.adjust_adapters import ParadistillAdapter
from paradistill.errors import UserError
from paradistill.generation import sample_adjust
from paradistill.loader import load_checkpoint
from paradistill.sampling.base import SamplingOptions
from test_dlm import DREAM_MASK, official_replica, tiny_chat_tokenizer

TINY = ["model.dim=32", "model.n_layers=1", "model.n_heads=2", "data.seq_len=16", "data.num_tokens=20000",
        "train.batch_size=8", "train.eval_every=1000", "train.checkpoint_every=1000", "train.ema=0",
        "train.warmup_steps=1"]


@pytest.mark.parametrize("arch", ["llada", "dream"])
def test_train_export_load_and_sample(tmp_path, arch, capsys):
    from paradistill import api
    from paradistill.cli import main

    recipe = api.load_recipe("tiny", TINY + [f"model.arch={arch}", "train.max_steps=3",
                                             f"data.cache_dir={tmp_path / 'data'}"])
    api.train_model("mdlm", recipe, tmp_path / "run", progress=False)
    trained = load_checkpoint(tmp_path / "run")
    assert trained.kind == arch and type(trained.model).__name__ == "DiffusionLM"
    out = tmp_path / "export"
    assert main(["export", str(tmp_path / "run"), "--to", str(out), "--format", arch, "--shard-mb", "0"]) == 0
    index = json.loads((out / "model.safetensors.index.json").read_text())
    names = set(index["weight_map"])
    assert ("model.transformer.blocks.0.ff_out.weight" if arch == "llada" else "model.layers.0.self_attn.q_proj.bias") in names
    assert len(set(index["weight_map"].values())) > 1  # sharded
    config = json.loads((out / "config.json").read_text())
    assert config["mask_token_id"] == trained.tokenizer.mask_id
    back = load_checkpoint(out)
    assert back.record.seq_len == 16 and back.record.keep_bos
    assert back.kind == arch and back.tokenizer.fingerprint() == trained.tokenizer.fingerprint()
    x = torch.randint(4, trained.tokenizer.vocab_size, (2, 16))
    with torch.no_grad():
        assert torch.equal(back.model(x).logits, trained.model(x).logits)
    samples = tmp_path / "s.jsonl"
    assert main(["sample", str(out), "--sampler", "low-confidence", "--block-size", "4", "--steps", "2",
                 "--num", "3", "--prompt", "the", "--gen-length", "8", "--stop-at-eos", "--out", str(samples)]) == 0
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(rows) == 3 and len(rows[0]["tokens"]) == 1 + 1 + 8  # BOS + prompt + generated
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "the"}\n{"prompt": "a"}\n')
    assert main(["sample", str(out), "--prompts", str(prompts), "--num", "2", "--steps", "4", "--length", "12",
                 "--sampler", "entropy", "--out", str(samples), "--overwrite"]) == 0
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["the", "the", "a", "a"]
    if arch == "llada":  # SDTT with the published-layout directory as teacher: the student keeps the architecture
        assert main(["distill", "sdtt", "--teacher", str(out), "--from-steps", "4", "--to-steps", "2",
                     "--steps-per-round", "2", "--out", str(tmp_path / "sdtt"), *TINY,
                     f"data.cache_dir={tmp_path / 'data'}"]) == 0
        student = load_checkpoint(tmp_path / "sdtt")
        assert student.kind == "llada" and type(student.model).__name__ == "DiffusionLM"
    assert main(["export", str(tmp_path / "run"), "--to", str(tmp_path / "x"), "--format",
                 "dream" if arch == "llada" else "llada"]) == 2
    assert "needs one of" in capsys.readouterr().err


def save_random_sampler(path, base):
    adapter = ParadistillAdapter.from_loaded(base)
    torch.manual_seed(1)
    s = SamplerLayer(SamplerConfig(adapter.embed_size, adapter.hidden_size, adapter.hidden_size, 2))
    with torch.no_grad():
        s.out_norm.weight.normal_(0, 3.0)
    method = {"base": str(base.path.resolve()), "base_kind": base.kind, "base_fingerprint": adapter.fingerprint(),
              "seq_len": 10, "keep_bos": True}
    save_checkpoint(path, s.eval(), "adjust", base.tokenizer, method)
    return path


def test_adjust_k1_is_sequential_on_a_dream_replica(tmp_path):
    path, _, _ = official_replica("dream", tmp_path)
    tiny_chat_tokenizer(path)
    base = load_checkpoint(path)
    assert base.record.keep_bos and base.tokenizer.bos_id == 151643
    x = torch.full((3, 10), DREAM_MASK)
    fixed = torch.zeros_like(x, dtype=torch.bool)
    x[:, :2], fixed[:, :2] = torch.tensor([151643, 5]), True
    ckpt = save_random_sampler(tmp_path / "adj", base)
    ref = reference_sequential(base.model, DREAM_MASK, x, fixed, torch.Generator().manual_seed(3))
    for mode in ("adjust", "marginal"):
        r = sample_adjust(base, x, fixed, torch.Generator().manual_seed(3), SamplingOptions(), 1, mode, ckpt)
        assert torch.equal(r.tokens, ref) and r.nfe == 8
    r4 = sample_adjust(base, x, fixed, torch.Generator().manual_seed(3), SamplingOptions(), 4, "adjust", ckpt)
    assert r4.nfe == 2 and r4.extra["sampler_passes"] == 6
    # the sampler's checkpoint loads with its base (an official directory) by path
    loaded = load_checkpoint(ckpt)
    assert loaded.kind == "adjust" and loaded.model.base is not None
    # another base (other weights): refused
    other_path, _, _ = official_replica("dream", tmp_path / "o" if (tmp_path / "o").mkdir() is None else None,
                                        seed=7)
    tiny_chat_tokenizer(other_path)
    other = load_checkpoint(other_path)
    with pytest.raises(UserError, match="trained on another base"):
        sample_adjust(other, x, fixed, torch.Generator(), SamplingOptions(), 2, "adjust", ckpt)


@pytest.mark.slow  # ~2 min of CPU time (training ~60 s, ADJUST ~40 s, 3 x 384 samples); 16 min wall on a loaded 2-core box
def test_tiny_llada_end_to_end_adjust_between_marginal_and_sequential(tmp_path):
    """Train a tiny LLaDA-architecture MDLM on the built-in corpus, export it in LLaDA's layout, load it back by
    path, train an ADJUST sampler on it, and sample K = 4: the exact NLL per token (built-in generator) of the
    ADJUST samples lies between sequential (K = 1) and marginal K = 4, each gap larger than 2 standard errors of the
    difference of the two means (independent samples, 384 per arm; measured gap sequential -> marginal ~3 nats/token
    with s.e. ~0.15, so this is no coin flip)."""
    from paradistill import api
    from paradistill.data.grammar import StoryGrammar
    from paradistill.eval.metrics import exact_nll

    common = ["model.dim=64", "model.n_layers=2", "model.n_heads=4", "model.rope_base=10000", "data.seq_len=16",
              "data.num_tokens=200000", "train.eval_every=1000", "train.checkpoint_every=1000", "train.ema=0",
              "train.warmup_steps=20", f"data.cache_dir={tmp_path / 'data'}"]
    recipe = api.load_recipe("tiny", common + ["model.arch=llada", "train.max_steps=800", "train.batch_size=32",
                                               "train.lr=3e-3"])
    api.train_model("mdlm", recipe, tmp_path / "base", progress=False)
    from paradistill.models.official import save_official

    trained = load_checkpoint(tmp_path / "base")
    save_official(trained.model, trained.tokenizer, tmp_path / "llada", record=trained.method)
    adj = api.load_recipe("tiny", common + ["adjust.trajectories=384", "adjust.steps=300", "adjust.batch_size=32",
                                            "adjust.max_unroll=4", "adjust.lr=3e-3", "adjust.ema=0",
                                            "adjust.traj_batch_size=128", "adjust.shard_size=128"])
    api.distill_adjust(tmp_path / "llada", adj, tmp_path / "adjust", progress=False)
    base = load_checkpoint(tmp_path / "llada")
    assert base.kind == "llada" and base.record.seq_len == 16
    grammar = StoryGrammar()
    n = 384
    nll = {}
    for name, k, mode in (("sequential", 1, "marginal"), ("marginal", 4, "marginal"), ("adjust", 4, "adjust")):
        r = api.generate(base, n, sampler="adjust", batch_size=128, seed=11, progress=False, tokens_per_pass=k,
                         mode=mode, adjust_checkpoint=str(tmp_path / "adjust"))
        totals, counts = exact_nll(r.tokens.tolist(), grammar)
        per = totals / counts
        nll[name] = (per.mean(), per.std(ddof=1) / math.sqrt(n))
    gap = lambda a, b: (nll[b][0] - nll[a][0]) / math.hypot(nll[a][1], nll[b][1])  # noqa: E731
    assert gap("sequential", "adjust") > 2.0 and gap("adjust", "marginal") > 2.0, nll
