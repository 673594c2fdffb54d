"""The speed benchmark at toy sizes: every method's cases run and are reported with their NFE, and the cached
paths really are the cheap ones (counted work, never timed)."""

from __future__ import annotations

import json

import pytest
import torch


def _tokens_seen(model):
    """Count the token positions that go through the model's embedding (one count per forward pass input)."""
    seen = []
    handle = model.embed.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].numel()))
    return seen, handle


def test_benchmark_runs_every_method_and_writes_its_tables(tmp_path):
    from paradistill.eval.bench import BenchConfig
    from paradistill.eval.bench_cases import run_benchmark

    torch.manual_seed(0)
    bc = BenchConfig(dim=32, n_layers=1, n_heads=2, vocab_size=40, lengths=[16], batch_sizes=[1], mdlm_steps=[4, 16],
                     bd3_block=16, bd3_steps_per_block=2, adjust_k=[2], rounds=1, warmup=0, forward_tokens=256)
    res = run_benchmark(bc, out=tmp_path, progress=False)
    cases = {c["case"]: c for c in res["cases"]}
    for name in ("ar kv-cache", "ar no-cache", "mdlm T=4 cached", "mdlm T=16 no-cache", "bd3lm B=16 kv-cache",
                 "bd3lm B=16 no-cache", "adjust K=2"):
        assert name in cases, (name, sorted(cases))
        assert cases[name]["tokens_per_s"] > 0 and cases[name]["latency_s"] > 0
    assert cases["ar kv-cache"]["nfe"] == 15 and cases["ar no-cache"]["nfe"] == 15  # one pass per new token
    assert cases["mdlm T=4 cached"]["nfe"] <= 4
    assert cases["adjust K=2"]["sampler_passes"] > 0
    assert {q["ratio"] for q in res["ratios"]} == {"ar kv-cache vs no-cache", "bd3lm B=16 kv-cache vs no-cache",
                                                   "mdlm T=16 cached vs ar kv-cache"}
    (cross,) = res["crossover"]
    assert cross["roofline_parity_T"] > 0 and cross["measured_parity_T"] > 0 and cross["from_T"] == 16
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["cases"] == res["cases"]
    table = (tmp_path / "table.md").read_text()
    assert "Ratios (same run, paired per round)" in table and "Where MDLM overtakes KV-cached AR" in table and "Roofline" in table
    assert (tmp_path / "bench.png").stat().st_size > 0


def test_ar_kv_cache_feeds_one_token_per_step():
    """Regression guard for the cached AR path: after the prompt, every forward pass sees exactly one new token
    (total L - 1 positions), while recomputation sees the whole prefix each time (~L^2 / 2)."""
    from paradistill.models.transformer import ModelConfig, Transformer
    from paradistill.sampling.ar import generate_ar

    model = Transformer(ModelConfig(vocab_size=40, dim=32, n_layers=1, n_heads=2, max_len=64)).eval()
    prompt = torch.zeros(2, 1, dtype=torch.long)
    seen, handle = _tokens_seen(model)
    try:
        cached = generate_ar(model, prompt, 24, torch.Generator().manual_seed(0), use_cache=True)
        per_pass_cached = list(seen)
        seen.clear()
        plain = generate_ar(model, prompt, 24, torch.Generator().manual_seed(0), use_cache=False)
        per_pass_plain = list(seen)
        seen.clear()
        static = generate_ar(model, prompt, 24, torch.Generator().manual_seed(0), static_cache=True)
    finally:
        handle.remove()
    assert torch.equal(cached.tokens, plain.tokens) and torch.equal(cached.tokens, static.tokens)
    assert per_pass_cached == [2] * 23  # batch 2 x one position per pass: the prompt, then each new token
    assert seen == [2] * 23  # the static cache (the compiled path's) too
    assert sum(per_pass_plain) == 2 * sum(range(1, 24))  # recomputation re-reads the prefix


def test_mdlm_cached_ancestral_skips_steps_that_change_nothing():
    """Regression guard for MDLM prediction caching: with more steps (256) than masked tokens (63) the cached
    sampler makes at most one forward pass per step that unmasks something (a step that unmasks nothing reuses
    the previous prediction); the uncached one makes one per step."""
    from paradistill.eval.bench import BenchConfig
    from paradistill.eval.bench_cases import _cases, bench_tokenizer
    from paradistill.generation import generate
    from paradistill.models.transformer import ModelConfig

    bc = BenchConfig(dim=32, n_layers=1, n_heads=2, vocab_size=40, methods=["mdlm"], mdlm_steps=[256])
    cfg = ModelConfig(vocab_size=40, dim=32, n_layers=1, n_heads=2, max_len=128)
    rows = {name: (loaded, opts) for name, loaded, opts in _cases(bc, cfg, bench_tokenizer(40), 64)}
    nfe = {}
    for name in ("mdlm T=256 cached", "mdlm T=256 no-cache"):
        loaded, opts = rows[name]
        options = dict(opts)
        res = generate(loaded, 1, batch_size=1, seed=0, progress=False, **options)  # batch 1: the bench case
        nfe[name] = sum(res.nfe) / len(res.nfe)
    assert nfe["mdlm T=256 no-cache"] >= 250  # about one pass per step
    assert nfe["mdlm T=256 cached"] <= 64, nfe


def test_ar_trained_on_wrapped_text_samples_from_bos():
    """Text corpora are packed as a wrapped stream (keep_bos False: rows start mid-document). An AR model still
    needs a first token to sample unconditionally: BOS, which starts every document of that stream."""
    from paradistill.eval.bench import make_loaded
    from paradistill.eval.bench_cases import bench_tokenizer
    from paradistill.generation import generate
    from paradistill.models.transformer import ModelConfig

    tok = bench_tokenizer(40)
    loaded = make_loaded("ar", ModelConfig(vocab_size=40, dim=32, n_layers=1, n_heads=2, max_len=64), tok,
                         {"seq_len": 16, "keep_bos": False, "data_mode": "wrap"})
    res = generate(loaded, 3, batch_size=3, seed=0, progress=False)
    assert res.tokens.shape == (3, 16)
    assert (res.tokens[:, 0] == tok.bos_id).all() and (res.tokens[:, 1:] != tok.mask_id).all()
    prompted = generate(loaded, 2, batch_size=2, seed=0, progress=False, prompt="w1 w2")
    assert prompted.tokens[0, :2].tolist() == tok.encode("w1 w2")


def test_benchmark_interleaves_rounds_with_hf_baseline_block_caches_and_overhead(tmp_path):
    from paradistill.eval.bench import BenchConfig
    from paradistill.eval.bench_cases import run_benchmark

    bc = BenchConfig(dim=32, n_layers=1, n_heads=2, vocab_size=40, lengths=[32], batch_sizes=[1, 2],
                     mdlm_steps=[16], methods=["ar", "hf", "mdlm", "blockcache"], block=8, block_steps=2, rounds=2,
                     warmup=1, forward_tokens=256, ar_no_cache=False, mdlm_no_cache=False, heavy_tokens=40,
                     overhead_rounds=2, overhead_length=32)
    res = run_benchmark(bc, out=tmp_path, progress=False)
    b1 = {c["case"] for c in res["cases"] if c["batch"] == 1}
    b2 = {c["case"] for c in res["cases"] if c["batch"] == 2}
    assert b1 == {"ar kv-cache", "hf-gpt2 generate", "mdlm T=16 cached", "mdlm B=8 S=2 no-cache",
                  "mdlm B=8 S=2 prefix", "mdlm B=8 S=2 dual"}
    assert b2 == {"ar kv-cache", "hf-gpt2 generate", "mdlm T=16 cached", "mdlm B=8 S=2 dual"}  # heavy: a subset
    assert all(len(c["times"]) == 2 for c in res["cases"])
    hf = next(c for c in res["cases"] if c["case"] == "hf-gpt2 generate")
    assert hf["nfe"] == 31
    prefix = next(c for c in res["cases"] if c["case"] == "mdlm B=8 S=2 prefix")
    assert prefix["nfe"] == 8  # 4 blocks x 2 passes
    labels = {(q["ratio"], q["batch"]) for q in res["ratios"]}
    assert ("mdlm B=8 S=2 prefix vs no-cache", 1) in labels and ("ar kv-cache vs hf-gpt2 generate", 2) in labels
    for q in res["ratios"]:
        assert q["min"] <= q["value"] <= q["max"] and q["rounds"] == 2
    so = res["sampler_overhead"]
    assert set(so["overhead"]) == {"ancestral", "confidence", "threshold"}
    # the machine's load is recorded at the start, at every round of every (L, batch) group, and at the end
    loads = res["load_average"]
    assert [q.get("when") for q in (loads[0], loads[-1])] == ["start", "end"]
    assert sorted((q["batch"], q["round"]) for q in loads[1:-1]) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert all(q["loadavg"] is None or len(q["loadavg"]) == 3 for q in loads) and res["wall_s"] > 0
    table = (tmp_path / "table.md").read_text()
    assert table.splitlines()[2].startswith("**Verdict**")
    assert "Sampler work outside the forward" in table


def test_heavy_and_compile_case_lists_choose_the_cases_and_reject_unknown_names():
    from paradistill.errors import UserError
    from paradistill.eval.bench import BenchConfig
    from paradistill.eval.bench_cases import _cases, bench_tokenizer
    from paradistill.models.transformer import ModelConfig

    cfg = ModelConfig(vocab_size=40, dim=32, n_layers=1, n_heads=2, max_len=64)
    tok = bench_tokenizer(40)
    bc = BenchConfig(dim=32, n_layers=1, n_heads=2, vocab_size=40, lengths=[32], mdlm_steps=[16],
                     methods=["ar", "hf", "mdlm", "blockcache"], block=8, block_steps=2, heavy_tokens=40, compile=True,
                     compile_cases=["ar kv-cache"], heavy_cases=["ar kv-cache", "mdlm B=8 S=2 dual"])
    light = [c[0] for c in _cases(bc, cfg, tok, 32, batch=1)]
    assert "ar kv-cache (compiled)" in light and "mdlm T=16 cached (compiled)" not in light  # only the chosen twin
    assert "mdlm B=8 S=2 prefix" in light  # below heavy_tokens every case runs
    assert [c[0] for c in _cases(bc, cfg, tok, 32, batch=2)] == ["ar kv-cache", "mdlm B=8 S=2 dual",
                                                                  "ar kv-cache (compiled)"]
    bc.heavy_cases = ["ar kvcache"]
    with pytest.raises(UserError, match="--heavy-cases"):
        _cases(bc, cfg, tok, 32, batch=2)
    bc.heavy_cases, bc.compile_cases = None, ["mdlm T=99 cached"]
    with pytest.raises(UserError, match="--compile-cases"):
        _cases(bc, cfg, tok, 32, batch=1)
