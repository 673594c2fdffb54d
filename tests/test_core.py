"""Backbone, MDLM math, samplers, AR decoding (issue #3): tests that fail if the math is wrong."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import make_model
from paradistill.diffusion.mdlm import NEG_INF, masked_token_nll, nelbo_terms, q_sample, sample_times, subs_log_probs
from paradistill.diffusion.schedules import LogLinear
from paradistill.errors import UserError
from paradistill.sampling.ar import generate_ar
from paradistill.sampling.base import Denoiser, SamplingOptions, run_sampler
from paradistill.sampling.categorical import prepare_log_probs, sample_categorical
from paradistill.sampling.registry import build_sampler

MASK = 3


def test_subs_zeroes_mask_and_copies_unmasked():
    logits = torch.randn(2, 5, 12)
    xt = torch.tensor([[MASK, 5, MASK, 7, 8], [4, MASK, MASK, MASK, 11]])
    lp = subs_log_probs(logits, xt, MASK)
    probs = lp.exp()
    assert torch.allclose(probs.sum(-1), torch.ones(2, 5), atol=1e-5)
    assert (probs[..., MASK] < 1e-30).all()
    unmasked = xt != MASK
    assert torch.equal(probs[unmasked].argmax(-1), xt[unmasked])
    assert torch.allclose(probs[unmasked].max(-1).values, torch.ones(int(unmasked.sum())))
    # at masked positions: softmax over the non-mask logits
    ref = torch.log_softmax(logits.index_fill(-1, torch.tensor([MASK]), NEG_INF), -1)
    assert torch.allclose(lp[~unmasked], ref[~unmasked], atol=1e-6)


def test_loglinear_weight_is_one_over_t():
    sched = LogLinear(1e-3)
    t = torch.linspace(0.01, 1.0, 50)
    alpha, dalpha = sched(t)
    assert torch.allclose(alpha, 1 - (1 - 1e-3) * t)
    assert torch.allclose(sched.weight(t), 1.0 / t, rtol=1e-5)


def test_nelbo_terms_weighted_nll_on_masked_only():
    logits = torch.randn(3, 6, 10)
    x0 = torch.randint(4, 10, (3, 6))
    xt = x0.clone()
    xt[:, ::2] = MASK
    t = torch.tensor([0.2, 0.5, 1.0])
    terms = nelbo_terms(logits, x0, xt, t, LogLinear(1e-3), MASK)
    nll = masked_token_nll(logits, x0, MASK)
    assert torch.allclose(terms[:, ::2], nll[:, ::2] / t[:, None], rtol=1e-5)
    assert (terms[:, 1::2] == 0).all()


def test_antithetic_times_are_stratified():
    g = torch.Generator().manual_seed(0)
    t = sample_times(8, g, eps=1e-3)
    assert ((t >= 1e-3) & (t <= 1)).all()
    bins = ((t - 1e-3) / (1 - 1e-3) * 8).floor().long().clamp(max=7)
    assert sorted(bins.tolist()) == list(range(8))  # one time per stratum


def test_q_sample_masks_with_probability_one_minus_alpha():
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((400, 50), 7)
    xt = q_sample(x0, torch.full((400,), 0.3), MASK, g)
    frac = (xt == MASK).float().mean().item()
    assert abs(frac - 0.7) < 0.01
    keep = torch.zeros_like(x0, dtype=torch.bool)
    keep[:, 0] = True
    assert (q_sample(x0, torch.zeros(400), MASK, g, keep=keep)[:, 0] == 7).all()


def test_ar_kv_cache_logits_match_full_pass():
    model = make_model(20, n_layers=3)
    x = torch.randint(0, 20, (3, 17))
    full = model(x, attn="causal").logits
    cache = model.new_cache(3, 17)
    parts = [model(x[:, :5], attn="causal", cache=cache, cache_write=True).logits]
    for i in range(5, 17):
        parts.append(model(x[:, i:i + 1], attn="causal", cache=cache, cache_write=True).logits)
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


def test_static_kv_cache_matches_dynamic_cache_and_full_pass():
    """The static cache (fixed shapes, mask from positions: the compiled decoding path) gives the logits of a
    full causal pass, for a prompt of several tokens and then one token per step."""
    model = make_model(20, n_layers=3)
    x = torch.randint(0, 20, (3, 17))
    full = model(x, attn="causal").logits
    cache = model.new_cache(3, 17, static=True)
    parts = [model(x[:, :5], attn="causal", cache=cache, positions=torch.arange(5)).logits]
    for i in range(5, 17):
        parts.append(model(x[:, i:i + 1], attn="causal", cache=cache, positions=torch.tensor([i])).logits)
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)
    assert cache.length == 0  # the static cache keeps no Python-side state
    with pytest.raises(UserError, match="explicit 1-D positions"):
        model(x[:, :1], attn="causal", cache=cache)
    with pytest.raises(UserError, match="explicit 1-D positions"):
        model(x[:, :1], attn="bidirectional", cache=cache, positions=torch.tensor([0]))


def test_ar_generation_static_cache_equals_dynamic():
    model = make_model(20)
    prompt = torch.ones(2, 3, dtype=torch.long)
    a = generate_ar(model, prompt, 12, torch.Generator().manual_seed(3), banned_ids=(MASK,))
    b = generate_ar(model, prompt, 12, torch.Generator().manual_seed(3), banned_ids=(MASK,), static_cache=True)
    assert torch.equal(a.tokens, b.tokens) and a.nfe == b.nfe == 9
    with pytest.raises(UserError, match="static KV cache"):
        generate_ar(model, prompt, 12, torch.Generator(), use_cache=False, compile=True)


def test_ar_compile_failure_names_the_fix(monkeypatch):
    import paradistill.sampling.ar as ar

    def broken(*args, **kwargs):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(ar, "compiled_forward", lambda model: broken)
    with pytest.raises(UserError, match="C\\+\\+ compiler.*without --compile"):
        generate_ar(make_model(20), torch.ones(1, 1, dtype=torch.long), 6, torch.Generator(), compile=True)


@pytest.mark.slow
def test_ar_compiled_decoding_equals_eager():
    """The compiled static-cache path (torch.compile, C++ wrapper on CPU) samples what eager decoding samples and
    compiles one graph for every step (no recompilation per position)."""
    import torch._dynamo.utils as dynamo_utils

    torch._dynamo.reset()
    model = make_model(20)
    prompt = torch.ones(2, 1, dtype=torch.long)
    a = generate_ar(model, prompt, 16, torch.Generator().manual_seed(5), banned_ids=(MASK,))
    b = generate_ar(model, prompt, 16, torch.Generator().manual_seed(5), banned_ids=(MASK,), compile=True)
    c = generate_ar(model, prompt, 16, torch.Generator().manual_seed(6), banned_ids=(MASK,), compile=True)
    assert torch.equal(a.tokens, b.tokens) and a.nfe == b.nfe == 15
    assert not torch.equal(b.tokens, c.tokens)
    assert dynamo_utils.counters["stats"]["unique_graphs"] == 1


def test_ar_generation_cached_equals_uncached():
    model = make_model(20)
    prompt = torch.ones(2, 1, dtype=torch.long)
    a = generate_ar(model, prompt, 12, torch.Generator().manual_seed(3), use_cache=True, banned_ids=(MASK,))
    b = generate_ar(model, prompt, 12, torch.Generator().manual_seed(3), use_cache=False, banned_ids=(MASK,))
    assert torch.equal(a.tokens, b.tokens)
    assert a.nfe == b.nfe == 11
    assert (a.tokens != MASK).all()


def test_float64_sampling_matches_known_distribution():
    probs = torch.tensor([0.5, 0.25, 0.125, 0.0625, 0.0625])
    g = torch.Generator().manual_seed(0)
    draws = sample_categorical(probs.log().expand(40000, -1), g)
    counts = np.bincount(draws.numpy(), minlength=5)
    assert stats.chisquare(counts, probs.numpy() * 40000).pvalue > 1e-3
    assert prepare_log_probs(torch.randn(3, 5)).dtype == torch.float64


def test_inverse_cdf_draws_take_logits_never_pick_a_zero_weight_and_follow_temperature():
    """Unnormalised, shifted logits give the same law; -inf (zero weight) entries are never drawn, also at u = 0."""
    logits = torch.tensor([float("-inf"), 0.0, float("-inf"), 1.0, float("-inf")]) + 50.0
    g = torch.Generator().manual_seed(0)
    draws = sample_categorical(logits.expand(40000, -1), g)
    assert set(draws.unique().tolist()) <= {1, 3}
    p3 = math.exp(1) / (1 + math.exp(1))
    assert abs(float((draws == 3).double().mean()) - p3) < 4 * math.sqrt(p3 * (1 - p3) / 40000)
    cold = sample_categorical(logits.expand(40000, -1), g, temperature=0.5)
    p3 = math.exp(2) / (1 + math.exp(2))
    assert abs(float((cold == 3).double().mean()) - p3) < 4 * math.sqrt(p3 * (1 - p3) / 40000)
    # the rule sample_categorical applies: a uniform of exactly 0 lands on the first token with positive weight
    cdf = torch.tensor([[0.0, 1.0, 1.0, 2.0]], dtype=torch.float64)
    assert int(torch.searchsorted(cdf, torch.zeros(1, 1, dtype=torch.float64), right=True)) == 1


def test_top_p_keeps_smallest_nucleus_and_temperature_sharpens():
    lp = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    filtered = prepare_log_probs(lp, top_p=0.75).exp()
    assert torch.allclose(filtered, torch.tensor([0.625, 0.375, 0.0, 0.0], dtype=torch.float64))
    cold = prepare_log_probs(lp, temperature=0.5).exp()
    assert cold[0] > 0.5 and torch.allclose(cold.sum(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("bad", [dict(temperature=0.0), dict(temperature=-1), dict(top_p=0.0), dict(top_p=1.5)])
def test_bad_sampling_options(bad):
    with pytest.raises(UserError, match="temperature|top_p"):
        SamplingOptions(**bad).validate()


SAMPLERS = [("ancestral", {}), ("ancestral-nocache", {}), ("first-hitting", {}), ("confidence", {}),
            ("entropy", {}), ("margin", {}), ("ancestral", {"block_size": 4}), ("confidence", {"block_size": 8})]


@pytest.mark.parametrize("name,kw", SAMPLERS)
def test_samplers_keep_fixed_tokens_and_leave_no_mask(name, kw):
    model = make_model(12)
    x = torch.full((3, 16), MASK)
    fixed = torch.zeros(3, 16, dtype=torch.bool)
    x[:, 0], fixed[:, 0] = 1, True  # BOS
    x[:, 5], fixed[:, 5] = 9, True  # infill anchor
    x[1, 1:4], fixed[1, 1:4] = torch.tensor([5, 6, 7]), True  # a prompt in row 1
    sampler = build_sampler(name, **kw)
    out = run_sampler(sampler, Denoiser(model, MASK), x, fixed, torch.Generator().manual_seed(0), steps=6)
    assert torch.equal(out.tokens[fixed], x[fixed])
    assert (out.tokens != MASK).all()
    assert out.nfe >= 1


def test_first_hitting_uses_one_nfe_per_token():
    model = make_model(12)
    x = torch.full((2, 10), MASK)
    fixed = torch.zeros(2, 10, dtype=torch.bool)
    x[:, 0], fixed[:, 0] = 1, True
    out = run_sampler(build_sampler("first-hitting"), Denoiser(model, MASK), x, fixed,
                      torch.Generator().manual_seed(0), steps=1)
    assert out.nfe == 9


def test_cached_ancestral_equals_uncached_with_fewer_passes():
    model = make_model(12)
    x = torch.full((1, 12), MASK)
    fixed = torch.zeros(1, 12, dtype=torch.bool)
    x[:, 0], fixed[:, 0] = 1, True
    runs = {}
    for name in ("ancestral", "ancestral-nocache"):
        runs[name] = run_sampler(build_sampler(name), Denoiser(model, MASK), x, fixed,
                                 torch.Generator().manual_seed(5), steps=64)
    assert torch.equal(runs["ancestral"].tokens, runs["ancestral-nocache"].tokens)
    # uncached: one pass per step until nothing is masked; cached: one pass per step that follows a change
    assert runs["ancestral-nocache"].nfe > 40
    assert runs["ancestral"].nfe <= 11 + 1
    assert runs["ancestral"].nfe < runs["ancestral-nocache"].nfe


class _CountingDenoiser(Denoiser):
    """Records the time and the positions of every prediction asked for (the masked-only path)."""

    def __init__(self, model):
        super().__init__(model, MASK)
        self.calls = []

    def masked_log_probs(self, x, t, where):
        self.calls.append((t.clone(), where.clone()))
        return super().masked_log_probs(x, t, where)


def test_time_conditioned_model_predicts_at_each_steps_own_time_and_only_where_tokens_unmask():
    """Cached ancestral never reuses a prediction across times: it skips only the passes whose prediction nobody
    draws from (no position unmasks), and asks for the head only at the positions that unmask."""
    model = make_model(12, time_conditioning=True, cond_dim=16)
    x = torch.full((1, 8), MASK)
    fixed = torch.zeros(1, 8, dtype=torch.bool)
    counting = _CountingDenoiser(model)
    cached = run_sampler(build_sampler("ancestral"), counting, x, fixed, torch.Generator().manual_seed(0), steps=20)
    plain = run_sampler(build_sampler("ancestral-nocache"), Denoiser(model, MASK), x, fixed,
                        torch.Generator().manual_seed(0), steps=20)
    assert torch.equal(cached.tokens, plain.tokens)
    assert cached.nfe == len(counting.calls) < plain.nfe
    times = [float(t[0]) for t, _ in counting.calls]
    assert len(set(times)) == len(times) and times == sorted(times, reverse=True)  # each pass at its own step's t
    assert sum(int(w.sum()) for _, w in counting.calls) == 8  # each position predicted once: when it unmasks


def test_unknown_sampler_and_bad_steps():
    with pytest.raises(UserError, match="unknown sampler 'ancestal'.*did you mean 'ancestral'"):
        build_sampler("ancestal")
    model = make_model(12)
    x = torch.full((1, 8), MASK)
    with pytest.raises(UserError, match="steps=0"):
        run_sampler(build_sampler("ancestral"), Denoiser(model, MASK), x, torch.zeros_like(x, dtype=torch.bool),
                    torch.Generator(), steps=0)
    with pytest.raises(UserError, match="block_size=3 does not divide"):
        run_sampler(build_sampler("ancestral", block_size=3), Denoiser(model, MASK), x,
                    torch.zeros_like(x, dtype=torch.bool), torch.Generator(), steps=2)
