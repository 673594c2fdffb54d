"""Issue 27: masked-only log-probs, confidence-threshold unmasking, block-wise approximate KV caches, the windowed
static AR cache. Tests that fail if the selection rules, the cache's keys/values or the row order were wrong."""

from __future__ import annotations

import pytest
import torch

from conftest import make_model
from paradistill.diffusion.mdlm import subs_log_probs
from paradistill.errors import UserError
from paradistill.sampling.approx_cache import BlockCachedDenoiser
from paradistill.sampling.base import Denoiser, SamplingOptions, log_probs_at, run_sampler
from paradistill.sampling.parallel import ThresholdSampler, select_rows
from paradistill.sampling.registry import build_sampler

MASK, V = 3, 37


def _masked_input(bsz=3, length=24, seed=0, frac=0.6):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(4, V, (bsz, length), generator=g)
    x[torch.rand(bsz, length, generator=g) < frac] = MASK
    return x


# -- 1. masked-only log-probs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("time_conditioning", [False, True])
def test_masked_only_log_probs_equal_full_ones(time_conditioning):
    model = make_model(V, time_conditioning=time_conditioning)
    den = Denoiser(model, MASK)
    x = _masked_input()
    t = torch.tensor([0.3, 0.6, 0.9])
    full = den(x, t)
    where = x == MASK
    part = den.masked_log_probs(x, t, where)
    assert part.shape == (int(where.sum()), V)
    assert torch.allclose(part, full[where], atol=1e-5)
    # an independent reference: the model's logits, MASK removed, log-softmax at masked rows
    logits = model(x, attn="bidirectional", sigma=t if time_conditioning else None).logits
    ref = torch.log_softmax(logits.index_fill(-1, torch.tensor([MASK]), -1e6), -1)[where]
    assert torch.allclose(part, ref, atol=1e-5)
    # unmasked rows selected too: one-hot, as SUBS
    allpos = torch.ones_like(where)
    assert torch.allclose(den.masked_log_probs(x, t, allpos), full.reshape(-1, V), atol=1e-5)


def test_block_view_masked_log_probs_follow_block_row_order():
    den = Denoiser(make_model(V), MASK)
    x = _masked_input(length=16)
    view = den.block_view(x, 4, 12)
    xb = x[:, 4:12]
    where = xb == MASK
    assert torch.allclose(log_probs_at(view, xb, torch.ones(3), where), view(xb, torch.ones(3))[where], atol=1e-5)


def test_custom_denoiser_falls_back_to_full_output():
    class Table:
        mask_id, time_conditioned = MASK, False

        def __call__(self, x, t):
            return subs_log_probs(torch.arange(V, dtype=torch.float)[None, None].expand(*x.shape, V) * 0.1, x, MASK)

    x = _masked_input()
    where = x == MASK
    out = log_probs_at(Table(), x, torch.ones(3), where)
    assert torch.allclose(out, Table()(x, torch.ones(3))[where])


@pytest.mark.parametrize("name", ["ancestral", "ancestral-nocache", "first-hitting", "confidence", "entropy",
                                  "threshold", "factor", "eb"])
@pytest.mark.parametrize("block", [None, 8])
def test_samplers_never_change_fixed_tokens(name, block):
    model = make_model(V)
    length = 24
    g = torch.Generator().manual_seed(1)
    x = torch.randint(4, V, (2, length), generator=g)
    fixed = torch.rand(2, length, generator=g) < 0.3
    fixed[:, 0] = True
    sampler = build_sampler(name, block_size=block)
    out = run_sampler(sampler, Denoiser(model, MASK), x.clone(), fixed, torch.Generator().manual_seed(0), steps=6)
    assert torch.equal(out.tokens[fixed], x[fixed])
    assert not (out.tokens == MASK).any()


# -- 2. threshold rules ----------------------------------------------------------------------------------------
def test_select_rows_rules():
    inf = float("-inf")
    conf = torch.tensor([[0.95, 0.5, 0.91, inf, 0.2], [0.1, 0.3, inf, inf, inf], [inf] * 5], dtype=torch.float64)
    t = select_rows("threshold", 0.9, conf)
    assert t.tolist() == [[True, False, True, False, False], [False, True, False, False, False], [False] * 5]
    # factor f=1: k-th most confident needs c >= 1 - 1/(k+1): 0.5, 0.667, 0.75 -> 0.95, 0.91 pass, 0.5 fails
    assert select_rows("factor", 1.0, conf)[0].tolist() == [True, False, True, False, False]
    assert select_rows("factor", 2.0, conf)[0].tolist() == [True, True, True, False, False]  # 0.5 >= 1-2/4
    # eb: entropies 0.1, 0.2, 0.5 ascending; cum - max: 0, 0.1, 0.3 -> gamma 0.15 takes two
    ent = -torch.tensor([[0.5, 0.1, float("inf"), 0.2]], dtype=torch.float64)
    assert select_rows("eb", 0.15, ent).tolist() == [[False, True, False, True]]
    assert select_rows("eb", 0.0, ent).tolist() == [[False, True, False, False]]


@pytest.mark.parametrize("rule,one,all_", [("threshold", 1.0, 0.0), ("factor", 0.0, 1e9), ("eb", 0.0, 1e9)])
@pytest.mark.parametrize("block", [None, 8])
def test_threshold_limits(rule, one, all_, block):
    model = make_model(V)
    length = 24
    x = torch.full((2, length), MASK)
    fixed = torch.zeros(2, length, dtype=torch.bool)
    fixed[:, 0] = True
    x[:, 0] = 1
    free = length - 1
    den = Denoiser(model, MASK)
    wrap = (lambda s: build_sampler(rule, block_size=block, threshold=s))
    slow = run_sampler(wrap(one), den, x, fixed, torch.Generator().manual_seed(0), steps=1)
    assert slow.nfe == free  # one token per pass
    fast = run_sampler(wrap(all_), den, x, fixed, torch.Generator().manual_seed(0), steps=1)
    assert fast.nfe == (1 if block is None else length // block)  # each block in one pass
    assert not (fast.tokens == MASK).any() and not (slow.tokens == MASK).any()


def test_threshold_bad_values():
    with pytest.raises(UserError, match="threshold"):
        ThresholdSampler("threshold", 1.5)
    with pytest.raises(UserError, match="threshold"):
        build_sampler("ancestral", threshold=0.9)
    with pytest.raises(UserError, match="rule"):
        ThresholdSampler("nope", 0.5)


# -- 3. block-wise approximate caches --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("time_conditioning", [False, True])
def test_cached_pass_on_unchanged_tokens_equals_full_pass(mode, time_conditioning):
    """After a refresh, a cached pass over the same tokens reads exactly the keys / values a full pass computes."""
    model = make_model(V, time_conditioning=time_conditioning)
    x = _masked_input(length=32)
    t = torch.tensor([0.5, 0.7, 0.2])
    ref = Denoiser(model, MASK)(x, t)[:, 8:16]
    view = BlockCachedDenoiser(model, MASK, mode).block_view(x, 8, 16)
    first = view(x[:, 8:16], t)  # refresh (full pass)
    second = view(x[:, 8:16], t)  # cached pass
    assert view.parent.full_passes == 1 and view.parent.cached_passes == 1
    assert torch.allclose(first, ref, atol=1e-5)
    assert torch.allclose(second, ref, atol=1e-5)
    where = x[:, 8:16] == MASK
    assert torch.allclose(view.masked_log_probs(x[:, 8:16], t, where), ref[where], atol=1e-5)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("name", ["threshold", "confidence", "ancestral"])
def test_cache_refreshed_every_pass_equals_no_cache(mode, name):
    model = make_model(V)
    length = 32
    x = torch.full((2, length), MASK)
    fixed = torch.zeros(2, length, dtype=torch.bool)
    fixed[:, :3] = True
    x[:, :3] = torch.tensor([1, 7, 9])
    opts = SamplingOptions()
    runs = {}
    for key, den in (("none", Denoiser(model, MASK)), ("cache", BlockCachedDenoiser(model, MASK, mode, 1))):
        runs[key] = run_sampler(build_sampler(name, block_size=8, threshold=0.3 if name == "threshold" else None),
                                den, x, fixed, torch.Generator().manual_seed(3), steps=3, options=opts)
    assert torch.equal(runs["none"].tokens, runs["cache"].tokens)
    assert runs["none"].nfe == runs["cache"].nfe


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_cache_counts_and_fixed_tokens(mode):
    model = make_model(V)
    length = 32
    g = torch.Generator().manual_seed(2)
    x = torch.randint(4, V, (2, length), generator=g)
    fixed = torch.rand(2, length, generator=g) < 0.25
    den = BlockCachedDenoiser(model, MASK, mode)
    out = run_sampler(build_sampler("confidence", block_size=8), den, x.clone(), fixed,
                      torch.Generator().manual_seed(0), steps=4)
    assert torch.equal(out.tokens[fixed], x[fixed]) and not (out.tokens == MASK).any()
    assert den.full_passes == length // 8  # one refresh per block
    assert den.full_passes + den.cached_passes == out.nfe
    q = 8 if mode == "dual" else None
    if q:  # dual: cached passes run the block alone
        assert den.query_tokens == 2 * (length * den.full_passes + 8 * den.cached_passes)


# -- 4. compiled AR step reads only the filled part of its static cache -----------------------------------------
def test_static_cache_window_equals_full_buffer():
    model = make_model(V)
    prompt = torch.randint(4, V, (2, 5))
    full_cache = model.new_cache(2, 64, static=True)
    win_cache = model.new_cache(2, 64, static=True)
    pos = torch.arange(5)
    a = model(prompt, attn="causal", cache=full_cache, positions=pos).logits
    win_cache.window = 16
    b = model(prompt, attn="causal", cache=win_cache, positions=pos).logits
    assert torch.allclose(a, b, atol=1e-5)
    ref = model(prompt, attn="causal").logits
    assert torch.allclose(a, ref, atol=1e-5)


def test_read_window_and_static_decoding_across_windows():
    from paradistill.sampling.ar import generate_ar, read_window

    assert [read_window(n, 150, 64) for n in (1, 64, 65, 128, 129, 150)] == [64, 64, 128, 128, 150, 150]
    assert read_window(1, 1024) == 128 and read_window(300, 1024) == 512 and read_window(900, 1024) == 1024
    model = make_model(V, max_len=256)
    prompt = torch.full((2, 1), 1)
    ref = generate_ar(model, prompt, 150, torch.Generator().manual_seed(0), use_cache=True)
    win = generate_ar(model, prompt, 150, torch.Generator().manual_seed(0), static_cache=True)
    assert torch.equal(ref.tokens, win.tokens)


def test_adjust_confidence_threshold_limits(tmp_path):
    """ADJUST + threshold (marginal sampler here): tau = 1 is one pick per full pass, tau = 0 is K per pass."""
    from paradistill.distill.adjust_adapters import ParadistillAdapter
    from paradistill.distill.adjust_decode import joint_decode

    model = make_model(V)
    adapter = ParadistillAdapter(model, MASK)
    x = torch.full((2, 17), MASK)
    fixed = torch.zeros(2, 17, dtype=torch.bool)
    fixed[:, 0] = True
    x[:, 0] = 1
    opts = SamplingOptions()
    _, _, nfe_one, _ = joint_decode(adapter, x, fixed, torch.Generator().manual_seed(0), opts, 8, confidence=1.0)
    _, _, nfe_all, _ = joint_decode(adapter, x, fixed, torch.Generator().manual_seed(0), opts, 8, confidence=0.0)
    assert nfe_one == 16 and nfe_all == 2


def test_cli_threshold_and_block_cache(tmp_path, tiny_tokenizer, capsys):
    """`paradistill sample --sampler threshold --threshold ... --block-size ... --block-cache ...` end to end."""
    import json

    from paradistill.cli import main
    from paradistill.checkpoint import save_checkpoint

    model = make_model(tiny_tokenizer.vocab_size)
    ckpt = save_checkpoint(tmp_path / "mdlm", model, "mdlm", tiny_tokenizer, {"seq_len": 16, "keep_bos": True})
    for i, extra in enumerate((["--sampler", "threshold", "--threshold", "0.0"],
                               ["--sampler", "factor", "--threshold", "2", "--block-size", "8", "--block-cache", "prefix"],
                               ["--sampler", "eb", "--block-size", "4", "--block-cache", "dual"],
                               ["--sampler", "adjust", "--adjust-mode", "marginal", "--threshold", "0.5"])):
        out = tmp_path / f"s{i}.jsonl"
        assert main(["--threads", "1", "sample", str(ckpt), "--num", "2", "--out", str(out), *extra]) == 0
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(rows) == 2
    # threshold 0 without blocks: the whole sequence in one pass
    out = tmp_path / "t.jsonl"
    assert main(["sample", str(ckpt), "--num", "2", "--sampler", "threshold", "--threshold", "0", "--out", str(out)]) == 0
    assert all(json.loads(line)["nfe"] == 1 for line in out.read_text().splitlines())
    assert main(["sample", str(ckpt), "--num", "1", "--block-cache", "prefix", "--out", str(tmp_path / "u.jsonl")]) == 2
    assert "--block-size" in capsys.readouterr().err
    assert main(["sample", str(ckpt), "--num", "1", "--threshold", "0.5", "--out", str(tmp_path / "v.jsonl")]) == 2
