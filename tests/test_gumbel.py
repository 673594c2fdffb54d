"""Gumbel Distillation: posterior noise extraction (exactness, distribution, chunking, AR shift), teachers,
the noise-conditioned objective and sampler, the CLI, and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import kstest, norm

from paradistill.distill import gumbel_noise as gn
from paradistill.distill.gumbel import (STREAM_OFFLINE, GumbelConfig, GumbelObjective, NoiseInjected,
                                        noise_conditioned_denoiser, sample_teacher_with_seeds)
from paradistill.distill.teachers import ARCheckpointTeacher, GrammarTeacher, HFTeacher, check_vocab
from paradistill.methods.teachers import load_teacher
from paradistill.errors import UserError
from paradistill.models.noise_embed import topk_softmax

from conftest import make_model

EULER = 0.5772156649015329


def gen(seed):
    return torch.Generator().manual_seed(seed)


def gumbel_cdf(v):
    return np.exp(-np.exp(-v))


class TableTeacher:
    """A synthetic AR teacher: the log-probs at entry i depend on (i, previous token) through a random table."""

    def __init__(self, vocab=6, length=5, seed=0, spread=3.0):
        g = gen(seed)
        self.table = torch.log_softmax(spread * torch.randn(length, vocab, vocab, generator=g, dtype=torch.float64), -1)
        self.vocab, self.length = vocab, length

    def next_token_log_probs(self, ids):
        # ids: [B, L] -> [B, L, V]; entry i predicts token i + 1 from token i
        pos = torch.arange(ids.shape[1])
        return self.table[pos[None, :], ids]

    def sample(self, n, g):
        x = torch.zeros(n, self.length, dtype=torch.long)
        for i in range(1, self.length):
            p = self.next_token_log_probs(x[:, :i])[:, -1].exp()
            x[:, i] = torch.multinomial(p, 1, generator=g)[:, 0]
        return x


# ------------------------------------------------------------------------------------------------ the RNG
def test_counter_rng_matches_python_splitmix_and_is_uniform():
    z = torch.tensor([0, 1, -5, 123456789, 2**62, -(2**63), 2**63 - 1], dtype=torch.long)
    expect = [gn.mix64_reference(int(a) & ((1 << 64) - 1)) for a in z]
    assert [int(a) for a in gn.mix64(z)] == expect
    keys = gn.position_keys(torch.tensor([3, 4]), torch.arange(50), gn.STREAM_FRESH)
    u = gn.uniform_from_keys(keys, 400).reshape(-1).numpy()
    assert 0 < u.min() and u.max() < 1
    assert kstest(u, "uniform").pvalue > 1e-3
    other = gn.position_keys(torch.tensor([3, 4]), torch.arange(50), gn.STREAM_POSTERIOR)
    assert not torch.equal(keys, other)  # streams are independent


# ------------------------------------------------------------------------------------------------ exactness
def test_argmax_reproduces_every_observed_token_even_improbable_ones():
    g = gen(0)
    for trial in range(4):
        bsz, length, vocab = 16, 12, 50
        logp = torch.log_softmax(torch.randn(bsz, length, vocab, generator=g, dtype=torch.float64) * 6, -1)
        x = torch.randint(0, vocab, (bsz, length), generator=g)  # any token, however improbable
        xi = gn.extract_posterior(logp, x, gn.draw_seeds(bsz, g), dtype=torch.float64)
        assert xi.shape == (bsz, length, vocab) and torch.isfinite(xi).all()
        assert torch.equal((logp[:, :-1] + xi[:, 1:]).argmax(-1), x[:, 1:])


def test_argmax_on_grammar_batches_with_float32_teacher_and_zero_probability_ids():
    teacher = GrammarTeacher()
    x = teacher.grammar.sample(64, 32, gen(1))
    logp = teacher.next_token_log_probs(x)  # float64 with -inf at PAD / MASK
    xi = gn.extract_posterior(logp.float(), x, gn.draw_seeds(64, gen(2)), dtype=torch.float64)
    assert torch.isfinite(xi).all()
    assert torch.equal((logp[:, :-1].float().double() + xi[:, 1:]).argmax(-1), x[:, 1:])


def test_tie_breaking_guard_keeps_the_argmax():
    # a competitor exactly tied with the observed token is pushed down
    logp = torch.log(torch.tensor([[[0.5, 0.5]]], dtype=torch.float64))
    xi = torch.tensor([[[1.0, 1.0]]], dtype=torch.float64)
    fixed = gn._enforce_argmax(xi, logp, torch.tensor([[1]]), torch.tensor([[[True]]]))
    assert (logp + fixed).argmax(-1).item() == 1 and fixed[0, 0, 0] < 1.0


# ------------------------------------------------------------------------------------------------ distribution
def _posterior_field(teacher, n, seed, tokens=None):
    x = teacher.sample(n, gen(seed)) if tokens is None else tokens
    xi = gn.extract_posterior(teacher.next_token_log_probs(x), x, gn.draw_seeds(n, gen(seed + 1)),
                              dtype=torch.float64)
    return x, xi


def test_posterior_noise_is_iid_gumbel_when_tokens_come_from_the_teacher():
    teacher = TableTeacher(vocab=6, length=5, seed=3)
    n = 6000
    _, xi = _posterior_field(teacher, n, 10)
    for pos in (1, 2, 4):
        for k in range(teacher.vocab):
            assert kstest(xi[:, pos, k].numpy(), gumbel_cdf).pvalue > 1e-3, (pos, k)
    flat = xi[:, 1:].reshape(n, -1).numpy()  # 4 positions x 6 coordinates
    corr = np.corrcoef(flat, rowvar=False)
    off = corr[~np.eye(len(corr), dtype=bool)]
    assert np.abs(off).max() < 5 / math.sqrt(n)
    assert abs(flat.mean() - EULER) < 0.02 and abs(flat.std() - math.pi / math.sqrt(6)) < 0.02


def test_ks_test_has_power_when_tokens_do_not_come_from_the_teacher():
    teacher = TableTeacher(vocab=6, length=3, seed=3)
    n = 6000
    x = torch.randint(0, teacher.vocab, (n, 3), generator=gen(5))  # uniform tokens: not teacher samples
    _, xi = _posterior_field(teacher, n, 20, tokens=x)
    pvals = [kstest(xi[:, 1, k].numpy(), gumbel_cdf).pvalue for k in range(teacher.vocab)]
    assert min(pvals) < 1e-6


def test_noise_type_transforms_have_the_right_marginals_and_keep_the_order():
    xi = gn.gumbel_from_keys(gn.position_keys(torch.tensor([1]), torch.arange(40), 0), 500).reshape(-1)
    gauss = gn.transform_noise(xi, "gaussian")
    unif = gn.transform_noise(xi, "uniform")
    assert kstest(gauss.numpy(), norm.cdf).pvalue > 1e-3
    assert kstest(unif.numpy(), "uniform").pvalue > 1e-3
    order = xi.argsort()
    assert torch.equal(gauss.argsort(), order) and torch.equal(unif.argsort(), order)
    extreme = gn.transform_noise(torch.tensor([-6.0, 40.0, 700.0], dtype=torch.float64), "gaussian")
    assert torch.isfinite(extreme).all() and extreme[1] > 8


# ------------------------------------------------------------------------------------------------ chunking / shift
def test_chunked_and_one_shot_extraction_agree_bitwise():
    teacher = GrammarTeacher()
    x = teacher.grammar.sample(8, 24, gen(4))
    logp = teacher.next_token_log_probs(x)
    seeds = gn.draw_seeds(8, gen(5))
    full = gn.extract_posterior(logp, x, seeds, dtype=torch.float64, chunk=10**6)
    calls = []

    def slices(s, e):
        calls.append((s, e))
        return logp[:, s:e]

    for chunk in (1, 5, 7):
        assert torch.equal(gn.extract_posterior(slices, x, seeds, dtype=torch.float64, chunk=chunk), full)
    assert max(e - s for s, e in calls) <= 7
    sparse = gn.extract_posterior(slices, x, seeds, output="topk", topk=12, chunk=5)
    ref = topk_softmax(full, 12)
    assert torch.equal(sparse.indices, ref.indices)
    assert torch.allclose(sparse.log_weights, ref.log_weights.float(), atol=1e-6)
    fresh = gn.fresh_noise(seeds, 24, 50, temperature=0.7, chunk=10**6, dtype=torch.float64)
    assert torch.equal(gn.fresh_noise(seeds, 24, 50, temperature=0.7, chunk=3, dtype=torch.float64), fresh)
    assert torch.allclose(fresh / 0.7, gn.fresh_noise(seeds, 24, 50, chunk=4, dtype=torch.float64))


def test_noise_alignment_follows_the_ar_shift():
    teacher = TableTeacher(vocab=7, length=6, seed=8, spread=4.0)
    x = teacher.sample(400, gen(3))
    logp = teacher.next_token_log_probs(x)
    xi = gn.extract_posterior(logp, x, gn.draw_seeds(400, gen(4)), dtype=torch.float64)
    assert torch.equal((logp[:, :-1] + xi[:, 1:]).argmax(-1), x[:, 1:])  # entry i - 1 predicts token i
    unshifted = (logp[:, 1:] + xi[:, 1:]).argmax(-1) == x[:, 1:]
    assert unshifted.float().mean() < 0.8  # without the shift the noise does not explain the tokens
    # position 0 (BOS) gets unconditioned noise: it does not depend on the tokens
    other = x.clone()
    other[:, 1:] = (other[:, 1:] + 1) % 7
    xi2 = gn.extract_posterior(teacher.next_token_log_probs(other), other, gn.draw_seeds(400, gen(4)),
                               dtype=torch.float64)
    assert torch.equal(xi[:, 0], xi2[:, 0]) and not torch.equal(xi[:, 1], xi2[:, 1])


def test_offline_samples_are_regenerated_from_their_seeds():
    teacher = GrammarTeacher()
    seeds = gn.draw_seeds(6, gen(9))
    x = sample_teacher_with_seeds(teacher, seeds, 16, 1, teacher.vocab_size, progress=False)
    assert torch.isfinite(teacher.grammar.log_prob(x)).all()
    noise = gn.fresh_noise(seeds, 16, teacher.vocab_size, chunk=3, dtype=torch.float64, stream=STREAM_OFFLINE)
    logp = teacher.next_token_log_probs(x)
    assert torch.equal((logp[:, :-1] + noise[:, 1:]).argmax(-1), x[:, 1:])


# ------------------------------------------------------------------------------------------------ embedding
def test_topk_embedding_is_exact_when_k_covers_the_vocabulary_and_tied_has_no_vxh_matrix():
    model = make_model(12, noise_embed="dense", noise_topk=12)
    xi = gn.fresh_noise(torch.tensor([1, 2]), 5, 12, dtype=torch.float32)
    dense = model.noise_embed(xi)
    model.noise_embed.mode = "topk"
    assert torch.allclose(model.noise_embed(topk_softmax(xi, 12)), dense, atol=1e-6)
    tied = make_model(12, noise_embed="tied", noise_topk=3)
    assert tied.noise_embed.weight is None
    assert tied.noise_embed(gn.fresh_noise(torch.tensor([1]), 4, 12, output="topk", topk=3)).shape == (1, 4, 32)


def test_noise_enters_only_at_masked_positions():
    model = make_model(10, noise_embed="dense")
    idx = torch.tensor([[1, 5, 3, 6, 3]])  # MASK = 3
    a = gn.fresh_noise(torch.tensor([1]), 5, 10)
    b = gn.fresh_noise(torch.tensor([2]), 5, 10)
    clean = torch.tensor([[1, 5, 4, 6, 7]])
    assert torch.equal(NoiseInjected(model, a, 3)(clean).logits, NoiseInjected(model, b, 3)(clean).logits)
    assert torch.equal(NoiseInjected(model, a, 3)(clean).logits, model(clean).logits)
    assert not torch.allclose(NoiseInjected(model, a, 3)(idx).logits, NoiseInjected(model, b, 3)(idx).logits)
    swapped = b.clone()
    swapped[:, [2, 4]] = a[:, [2, 4]]  # only masked positions' noise matters
    assert torch.equal(NoiseInjected(model, a, 3)(idx).logits, NoiseInjected(model, swapped, 3)(idx).logits)


# ------------------------------------------------------------------------------------------------ objective
def _objective(student, noise="gumbel", embed="dense"):
    from paradistill.diffusion.objectives import DiffusionConfig, MDLMObjective

    if student == "mdlm":
        base = MDLMObjective(DiffusionConfig(), 3, 0, 1)
    else:
        from paradistill.diffusion.bd3lm import BD3Config, BD3Objective

        base = BD3Objective(BD3Config(block_size=4), DiffusionConfig(), 3, 0, 1)
    return GumbelObjective(base, GrammarTeacher(), GumbelConfig(noise=noise, embed=embed, topk=8), 3)


def test_linear_embedding_is_the_standardised_noise_times_w_and_ignores_a_constant_shift():
    model = make_model(12, noise_embed="linear")
    xi = gn.fresh_noise(torch.tensor([1, 2]), 5, 12, dtype=torch.float32)
    want = (xi - xi.mean(-1, keepdim=True)) / (math.pi / math.sqrt(6)) @ model.noise_embed.weight
    assert torch.allclose(model.noise_embed(xi), want, atol=1e-6)
    assert torch.allclose(model.noise_embed(xi + 3.0), want, atol=1e-5)  # Gumbel-max ignores a shift; so does e
    with pytest.raises(ValueError, match="dense noise"):
        model.noise_embed(topk_softmax(xi, 4))


@pytest.mark.parametrize("student,embed", [("mdlm", "dense"), ("mdlm", "topk"), ("bd3lm", "tied"),
                                           ("mdlm", "linear")])
def test_gd_objective_trains_the_noise_embedding_and_keeps_base_masks(student, embed):
    obj = _objective(student, embed=embed)
    model = make_model(360, noise_embed=embed, noise_topk=8).train()
    batch = GrammarTeacher().grammar.sample(4, 16, gen(0))
    loss, _ = obj.loss(model, batch, gen(7))
    loss.backward()
    grad = model.noise_embed.weight if embed != "tied" else model.noise_embed.out.weight
    assert torch.isfinite(loss) and grad.grad is not None and grad.grad.abs().sum() > 0
    assert obj.kind == f"gd-{student}"
    total, count = obj.eval_terms(model, batch, gen(7))
    assert count > 0 and torch.isfinite(total)


def test_gd_uses_the_same_times_and_masks_as_the_base_objective():
    seen = []
    obj = _objective("mdlm")
    original = obj._base_forward

    def spy(model, xt, t, x0, g):
        seen.append((xt.clone(), t.clone()))
        return original(model, xt, t, x0, g)

    obj._base_forward = spy
    model = make_model(360, noise_embed="dense")
    batch = GrammarTeacher().grammar.sample(4, 16, gen(0))
    obj.loss(model, batch, gen(11))
    from paradistill.diffusion.mdlm import q_sample, sample_times

    g = gen(11)
    t = sample_times(4, g)
    keep = torch.zeros_like(batch, dtype=torch.bool)
    keep[:, 0] = True
    xt = q_sample(batch, obj.base.schedule(t)[0], 3, g, keep=keep)
    assert torch.equal(seen[0][1], t) and torch.equal(seen[0][0], xt)


# ------------------------------------------------------------------------------------------------ teachers
def _save_ar(tmp_path, kind="ar"):
    from paradistill.data.tokenizers import build_tokenizer
    from paradistill.checkpoint import save_checkpoint

    tok = build_tokenizer("builtin")
    model = make_model(tok.vocab_size)
    return save_checkpoint(tmp_path / kind, model, kind, tok, {"seq_len": 16}), tok


def _save_hf(tmp_path, vocab=360, decoder=True, arch="gpt2"):
    from transformers import BertConfig, BertLMHeadModel, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    if arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=32, n_layer=1, n_head=2, n_positions=64))
    else:
        model = BertLMHeadModel(BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=1,
                                           num_attention_heads=2, intermediate_size=64, is_decoder=decoder))
    path = tmp_path / f"hf-{arch}-{vocab}"
    model.save_pretrained(path)
    return path


def test_teachers_share_the_ar_shift_convention_and_slices(tmp_path):
    ckpt, tok = _save_ar(tmp_path)
    x = GrammarTeacher().grammar.sample(3, 10, gen(2))
    for teacher in (load_teacher(str(ckpt)), load_teacher(f"hf:{_save_hf(tmp_path)}")):
        teacher.check_student(tok)
        full = teacher.next_token_log_probs(x)
        assert full.shape == (3, 10, 360)
        assert torch.allclose(full.exp().sum(-1), torch.ones(3, 10, dtype=full.dtype), atol=1e-5)
        assert torch.allclose(teacher.log_prob_slices(x)(2, 7), full[:, 2:7], atol=1e-5)
        assert torch.isinf(full[..., tok.mask_id]).all()  # MASK is never a teacher token
        shorter = teacher.next_token_log_probs(x[:, :6])  # causal: a prefix gives the same predictions
        assert torch.allclose(shorter, full[:, :6], atol=1e-5)
    assert isinstance(load_teacher("builtin-generator"), GrammarTeacher)
    assert isinstance(load_teacher(str(ckpt)), ARCheckpointTeacher)
    assert isinstance(load_teacher(str(_save_hf(tmp_path))), HFTeacher)


def test_bad_teachers_and_vocabularies_are_clear_errors(tmp_path, tiny_tokenizer):
    ckpt, tok = _save_ar(tmp_path, kind="mdlm")
    with pytest.raises(UserError, match="not causal"):
        load_teacher(str(ckpt))
    with pytest.raises(UserError, match="not causal"):
        load_teacher(f"hf:{_save_hf(tmp_path, decoder=False, arch='bert')}")
    with pytest.raises(UserError, match="does not exist"):
        load_teacher(str(tmp_path / "nothing"))
    with pytest.raises(UserError, match="vocabulary of 100 ids"):
        load_teacher(f"hf:{_save_hf(tmp_path, vocab=100)}").check_student(tok)
    with pytest.raises(UserError, match="vocabulary"):
        GrammarTeacher().check_student(tiny_tokenizer)
    class Tok:  # GPT-2 style: the student appends MASK after the teacher's ids
        vocab_size, special_ids = 10, {0, 1, 2, 9}

    check_vocab("t", 9, Tok)  # fine: the only extra id is special
    with pytest.raises(UserError, match="vocabulary of 8 ids"):
        check_vocab("t", 8, Tok)
    with pytest.raises(UserError, match="noise temperature"):
        gn.fresh_noise(torch.tensor([1]), 4, 10, temperature=0.0)
    with pytest.raises(UserError, match="noise temperature"):
        GumbelConfig(noise_temperature=-1).validate()
    with pytest.raises(UserError, match="gumbel.noise"):
        GumbelConfig(noise="cauchy").validate()


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_distill_sample_and_errors(tmp_path, capsys):
    from paradistill import api
    from paradistill.cli import main

    common = ["--recipe", "tiny", "data.num_tokens=20000", f"data.cache_dir={tmp_path / 'data'}", "data.seq_len=16",
              "model.dim=32", "model.n_layers=1", "model.n_heads=2", "train.max_steps=3", "train.batch_size=4",
              "train.eval_every=3", "train.eval_batches=1", "train.checkpoint_every=0", "train.warmup_steps=1"]
    out = tmp_path / "gd"
    assert main(["distill", "gumbel", "--teacher", "builtin-generator", "--out", str(out)] + common) == 0
    loaded = api.load(out)
    assert loaded.kind == "gd-mdlm" and loaded.method["gumbel"]["noise_temperature"] == 0.85
    res = api.generate(loaded, 4, sampler="first-hitting", progress=False)
    assert res.tokens.shape == (4, 16) and not (res.tokens == 3).any()
    res2 = api.generate(loaded, 4, sampler="ancestral", steps=4, progress=False, noise_temperature=0.5)
    assert res2.tokens.shape == (4, 16)
    # the noise is fixed across steps: the denoiser is a pure function of (x, t)
    den = noise_conditioned_denoiser(loaded, 2, 16, gen(0))
    x = torch.full((2, 16), 3)
    x[:, 0] = 1
    a, b = den(x, torch.ones(2)), den(x, torch.ones(2))
    assert torch.equal(a, b) and not torch.allclose(a[0], a[1])
    with pytest.raises(UserError, match="noise temperature"):
        api.generate(loaded, 2, progress=False, noise_temperature=-0.1)
    assert main(["sample", str(out), "--num", "2", "--steps", "2", "--noise-temperature", "0"]) == 2
    assert "noise temperature" in capsys.readouterr().err
    off = tmp_path / "gd-bd3-off"
    assert main(["distill", "gumbel", "--teacher", "builtin-generator", "--student", "bd3lm", "--offline",
                 "--embed", "topk", "--out", str(off), "gumbel.offline_samples=16", "gumbel.offline_val_samples=4",
                 "gumbel.topk=8"] + common) == 0
    assert api.load(off).kind == "gd-bd3lm" and (off / "offline_teacher_samples.npz").is_file()
    res3 = api.generate(api.load(off), 2, sampler="ancestral", steps=2, progress=False)
    assert res3.tokens.shape == (2, 16)
    assert main(["distill", "gumbel", "--teacher", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]
                + common) == 2
    assert "does not exist" in capsys.readouterr().err
    assert json.loads((out / "latest.json").read_text())["final"] is True


def test_independent_noise_is_the_uninformative_control():
    """noise=independent: N(0, 1) noise that does not depend on the text (the same seeds give the same noise for
    any x0), where the posterior noise (and its Gaussian-CDF map) reproduces every token of x0 by Gumbel-max."""
    from scipy.stats import kstest, norm

    obj = _objective("mdlm", noise="independent")
    grammar = GrammarTeacher().grammar
    a, b = grammar.sample(64, 16, gen(1)), grammar.sample(64, 16, gen(2))
    seeds = gn.draw_seeds(64, gen(3))
    na = obj.noise(a, seeds, "dense", 360)
    nb = obj.noise(b, seeds, "dense", 360)
    assert torch.equal(na, nb)  # the text does not enter
    assert kstest(na[:, 5, :40].flatten().double().numpy(), norm.cdf).pvalue > 1e-3
    informative = _objective("mdlm", noise="gaussian")
    pa, pb = informative.noise(a, seeds, "dense", 360), informative.noise(b, seeds, "dense", 360)
    assert not torch.equal(pa, pb)
