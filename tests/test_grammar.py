"""Exactness tests for the built-in story corpus (paradistill.data.grammar)."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from paradistill.data.grammar import StoryGrammar

LAM = 0.002


@pytest.fixture(scope="module")
def G():
    return StoryGrammar(noise=LAM)


@pytest.fixture(scope="module")
def G0():
    return StoryGrammar(noise=0.0)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def garbage(G, n, length, seed):
    x = torch.randint(4, G.vocab_size, (n, length), generator=gen(seed))
    x[:, 1::7] = G.eos_id  # sprinkle specials that may appear anywhere
    x[:, 2::9] = G.bos_id
    x[:, 0] = G.bos_id
    return x


def test_construction_and_ids(G):
    G2 = StoryGrammar(noise=LAM)  # construction cost is benchmarked, not asserted (timed tests are flaky)
    assert G.vocab[:4] == ["[PAD]", "[BOS]", "[EOS]", "[MASK]"]
    assert (G.pad_id, G.bos_id, G.eos_id, G.mask_id) == (0, 1, 2, 3)
    assert G.vocab_size == len(G.vocab) == len(set(G.vocab)) and 200 <= G.vocab_size <= 500
    assert G.num_states <= 6000
    assert G.fingerprint() == G2.fingerprint() != StoryGrammar(noise=0.01).fingerprint()
    assert {".", ","} <= set(G.vocab)


def test_next_token_distributions_normalised(G):
    prefixes = [G.sample(64, 40, gen(1)), garbage(G, 64, 40, 2)]
    for x in prefixes:
        for n in (1, 2, 7, 40):
            lp = G.next_token_logprobs(x[:, :n])
            assert lp.dtype == torch.float64 and lp.shape == (64, G.vocab_size)
            assert torch.allclose(lp.exp().sum(-1), torch.ones(64, dtype=torch.float64), atol=1e-12)
            assert torch.isinf(lp[:, [G.pad_id, G.mask_id]]).all()
            assert torch.isfinite(lp[:, [i for i in range(G.vocab_size) if i not in (0, 3)]]).all()


def test_log_prob_is_chain_rule_of_next_token(G):
    x = torch.cat([G.sample(3, 30, gen(3)), garbage(G, 2, 30, 4)])
    lp = G.log_prob(x)
    tok = G.token_log_probs(x)
    assert tok.dtype == torch.float64 and (tok[:, 0] == 0).all()
    assert torch.allclose(tok.sum(-1), lp, rtol=0, atol=1e-12)
    for b in range(x.shape[0]):
        steps = [G.next_token_logprobs(x[b : b + 1, :i])[0, x[b, i]] for i in range(1, x.shape[1])]
        assert math.isclose(float(sum(steps)), float(lp[b]), rel_tol=1e-12, abs_tol=1e-9)


def test_conditional_logprobs_match_next_token(G):
    x = torch.cat([G.sample(4, 25, gen(5)), garbage(G, 2, 25, 6)])
    cond = G.conditional_logprobs(x)
    assert cond.shape == (6, 25, G.vocab_size) and cond.dtype == torch.float64
    for i in range(25):
        assert torch.equal(cond[:, i], G.next_token_logprobs(x[:, : i + 1]))
    # AR-shift convention: entry i scores token i+1
    gathered = cond[:, :-1].gather(-1, x[:, 1:, None])[..., 0]
    assert torch.equal(gathered, G.token_log_probs(x)[:, 1:])


def test_empirical_prefix_frequencies_match_exact(G):
    n, depth = 20000, 4
    x = G.sample(n, depth + 1, gen(7))
    # a-priori cells: every prefix x1..x4 with exact probability >= 5/n (beam enumeration), rest pooled
    cells, lps = torch.full((1, 1), G.bos_id), torch.zeros(1, dtype=torch.float64)
    for _ in range(depth):
        joint = lps[:, None] + G.next_token_logprobs(cells)
        f, v = torch.nonzero(joint >= math.log(5 / n), as_tuple=True)
        cells, lps = torch.cat([cells[f], v[:, None]], 1), joint[f, v]
    assert torch.allclose(lps, G.log_prob(cells), rtol=0, atol=1e-12) and len(cells) > 100
    index = {tuple(c): i for i, c in enumerate(cells[:, 1:].tolist())}
    counts = np.zeros(len(cells) + 1)
    for row in x[:, 1:].tolist():
        counts[index.get(tuple(row), len(cells))] += 1
    p = lps.exp().numpy()
    f_exp = np.append(p, 1 - p.sum()) * n
    assert chisquare(counts, f_exp).pvalue > 1e-3


def test_packed_equals_unpacked(G):
    docs = G.sample_documents(20, gen(8))
    log_bos_after_eos = math.log(1 - LAM + LAM / (G.vocab_size - 2))
    for d1, d2 in zip(docs[::2], docs[1::2]):
        assert d1[0] == G.bos_id and d1[-1] == G.eos_id
        a, k = torch.tensor([d1]), 1 + len(d2) // 2
        assert int(G.states(a)[0, -1]) == G.expect_bos_state
        packed = G.log_prob(torch.tensor([d1 + d2[:k]]))
        want = G.log_prob(a) + log_bos_after_eos + G.log_prob(torch.tensor([d2[:k]]))
        assert torch.allclose(packed, want, rtol=0, atol=1e-10)


def test_sample_rows_are_packed_documents(G):
    x = G.sample(200, 160, gen(9))
    assert x.shape == (200, 160) and (x[:, 0] == G.bos_id).all()
    assert not ((x == G.pad_id) | (x == G.mask_id)).any()
    st = G.states(x)
    ends = st[:, :-1] == G.expect_bos_state  # after a document's EOS the next token is BOS w.p. 1-noise(1-1/V')
    assert ends.sum() > 200
    assert (x[:, 1:][ends] == G.bos_id).float().mean() > 0.98


def test_entropy_rate_mc_matches_exact_and_own_nll(G):
    mean, lo, hi = G.entropy_rate(num_samples=2000, length=128, generator=gen(10))
    exact_L = G.exact_entropy_rate(length=128)
    assert lo < hi and hi - lo < 0.05
    assert abs(mean - exact_L) < 2 * (hi - lo)  # ~4 standard errors
    stationary = G.exact_entropy_rate()
    assert abs(stationary - exact_L) < 0.05 and 1.4 < stationary < 3.0
    nll = -G.token_log_probs(G.sample(500, 128, gen(11)))[:, 1:].mean()
    assert abs(float(nll) - stationary) < 0.1


def test_grammatical_garbage_and_noise_levels(G, G0):
    clean = G0.sample(300, 100, gen(12))
    tok = G.token_log_probs(clean)[:, 1:]
    assert tok.min() > G.noise_logp + 5  # every token of a noise-free sample is far above the noise floor
    assert torch.isfinite(G0.log_prob(clean)).all()
    bad = garbage(G, 50, 60, 13)
    lp = G.log_prob(bad)
    assert torch.isfinite(lp).all() and (lp / 59 < G.noise_logp + 1.0).all()
    assert torch.isinf(G0.log_prob(bad)).all()
    noisy = G.token_log_probs(G.sample(2000, 100, gen(14)))[:, 1:]
    frac = float((noisy < math.log(2.5) + G.noise_logp).double().mean())  # noise that is ungrammatical
    assert 0.5 * LAM < frac < 1.5 * LAM


def test_one_slip_costs_about_one_token(G, G0):
    """After an ungrammatical token the automaton resynchronises, so coherent text after a slip scores
    normally again: one corrupted word costs about one noise-floor token, not the rest of the sequence."""
    clean = G0.sample(400, 64, gen(21))
    bad = clean.clone()
    pos = torch.randint(8, 40, (400,), generator=gen(22))
    word = torch.randint(4, G.vocab_size, (400,), generator=gen(23))
    bad[torch.arange(400), pos] = word
    tok = G.token_log_probs(bad)
    slipped = tok[torch.arange(400), pos] < G.noise_logp + 1  # rows where the new word is ungrammatical
    assert int(slipped.sum()) > 200
    cost = (G.log_prob(clean) - G.log_prob(bad))[slipped]
    per_slip = -G.noise_logp
    # a substituted word usually also breaks the next word ('the ran ball'): ~2 slips; a frozen state
    # would cost ~ per_slip x (64 - pos), i.e. 24-56 slips here
    assert float(cost.median()) < 3 * per_slip
    later = (tok[:, 1:] < G.noise_logp + 1).sum(1)[slipped].double()
    assert float(later.median()) <= 2 and float(later.mean()) < 4.0  # slips per row, the corrupted word included
    assert (G.states(bad)[torch.arange(400), pos] >= 0).all()


def test_pad_mask_and_errors(G):
    x = G.sample(3, 20, gen(15))
    x[0, 5], x[1, 19] = G.pad_id, G.mask_id
    lp = G.log_prob(x)
    assert torch.isinf(lp[:2]).all() and torch.isfinite(lp[2])
    with pytest.raises(ValueError):
        G.log_prob(torch.tensor([[5, 1, 2]]))
    with pytest.raises(ValueError):
        G.log_prob(torch.tensor([[1, G.vocab_size]]))
    with pytest.raises(ValueError, match="zebra"):
        G.encode("Tom saw a zebra")


def test_encode_decode_and_determinism(G, G0):
    a, b = G.sample(8, 50, gen(16)), G.sample(8, 50, gen(16))
    assert torch.equal(a, b) and not torch.equal(a, G.sample(8, 50, gen(17)))
    docs = G.sample_documents(5, gen(18))
    assert docs == G.sample_documents(5, gen(18))
    for d in docs:
        text = G.decode(d)
        assert "[" not in text and G.encode(text) == [t for t in d if t >= 4]
    lens = [len(d) - 2 for d in G0.sample_documents(2000, gen(19))]
    assert 15 <= np.percentile(lens, 10) and np.percentile(lens, 75) <= 65


def test_long_range_dependencies(G, G0):
    V = G.word_id

    def nxt(text):
        return G.next_token_logprobs(torch.tensor([[G.bos_id] + G.encode(text)]))[0]

    lp = nxt("Tom was a kind boy . one day ,")
    assert lp[V["he"]] > math.log(0.3) and lp[V["she"]] < G.noise_logp + 0.01
    lp = nxt("there was a shy girl named")
    assert lp[V["Lily"]] > math.log(0.3) and lp[V["Tom"]] < G.noise_logp + 0.01
    lp = nxt("Mia was a kind girl . she found two red balls . Mia hid the")
    assert lp[V["red"]] > math.log(0.3) and lp[V["blue"]] < G.noise_logp + 0.01
    assert nxt("Mia was a kind girl . she found two red balls . they")[V["were"]] > math.log(0.99)
    assert nxt("Mia was a kind girl . she found a red ball . it")[V["was"]] > math.log(0.99)
    assert nxt("Mia was a kind girl . she found a red ball . Mia hid the red")[V["ball"]] > math.log(0.99)
    # decoded noise-free samples: every pronoun matches the hero's gender, every colour the object's colour
    boys = {"Tom", "Ben", "Max"}
    for d in G0.sample_documents(300, gen(20)):
        words = G0.decode(d).split()
        names = [w for w in words if w in boys | {"Lily", "Mia", "Anna"}]
        assert len(set(names)) == 1
        pron = {w for w in words if w in ("he", "she")}
        assert pron <= ({"he"} if names[0] in boys else {"she"})
        assert len({w for w in words if w in ("red", "blue", "green")}) == 1
