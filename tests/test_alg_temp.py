"""Dream's `alg_temp` (sampling/categorical.position_keys): 0 / None is the deterministic choice of the most
confident positions; > 0 draws positions WITHOUT replacement with probabilities softmax(confidence / alg_temp)
(checked against the exact Plackett-Luce probabilities with a fixed stub denoiser)."""

from __future__ import annotations

import math

import pytest
import torch
from test_dlm import official_replica, tiny_chat_tokenizer

from paradistill.errors import UserError
from paradistill.sampling.base import SamplingOptions, run_sampler
from paradistill.sampling.registry import build_sampler

MASK, V, L = 7, 8, 5


class FixedDenoiser:
    """Every masked position i has the fixed distribution softmax(logits[i]) (independent of x)."""

    mask_id, time_conditioned = MASK, False

    def __init__(self, logits: torch.Tensor):  # [L, V]
        logits = logits.clone()
        logits[:, MASK] = -1e9
        self.log_probs = torch.log_softmax(logits.double(), -1).float()

    def __call__(self, x, t):
        return self.log_probs.expand(x.shape[0], -1, -1).clone()


def stub():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(L, V, generator=g) * 2.0
    den = FixedDenoiser(logits)
    conf = den.log_probs.double().exp().max(-1).values  # [L] the confidence sampler's score
    return den, conf


def first_picks(sampler_name, den, n, k, alg_temp, seed=0):
    """The positions unmasked in the first pass (k per row), over n independent rows: [n, L] bool."""
    x = torch.full((n, L), MASK)
    fixed = torch.zeros_like(x, dtype=torch.bool)
    sampler = build_sampler(sampler_name, tokens_per_step=k if sampler_name != "low-confidence" else None,
                            alg_temp=alg_temp)
    steps = math.ceil(L / k)
    state = sampler.init(x, fixed, den, torch.Generator().manual_seed(seed), steps, SamplingOptions())
    state = sampler.step(state)
    return state.x != MASK


@pytest.mark.parametrize("name", ["confidence", "low-confidence"])
def test_alg_temp_zero_is_the_deterministic_choice(name):
    den, conf = stub()
    top2 = set(conf.topk(2).indices.tolist())
    for alg_temp in (None, 0.0):
        picks = first_picks(name, den, 6, 2, alg_temp) if name == "confidence" else None
        if picks is not None:
            assert all(set(row.nonzero().squeeze(1).tolist()) == top2 for row in picks)
    # whole runs: alg_temp 0 and None give the same tokens as the default sampler with the same seed
    x = torch.full((4, L), MASK)
    fixed = torch.zeros_like(x, dtype=torch.bool)
    base = run_sampler(build_sampler(name), den, x, fixed, torch.Generator().manual_seed(3), 3).tokens
    for alg_temp in (None, 0.0):
        out = run_sampler(build_sampler(name, alg_temp=alg_temp), den, x, fixed, torch.Generator().manual_seed(3),
                          3).tokens
        assert torch.equal(out, base)


def test_alg_temp_draws_positions_from_softmax_of_confidence_without_replacement():
    den, conf = stub()
    temp = 0.2
    p = torch.softmax(conf / temp, 0)  # [L]
    n = 6000
    one = first_picks("confidence", den, n, 1, temp).double().mean(0)
    se = (p * (1 - p) / n).sqrt()
    assert ((one - p).abs() <= 4.5 * se + 1e-12).all(), (one, p)
    assert p.max() < 0.9 and (one - p).abs().max() < 0.05  # not degenerate: every position has real mass
    # two picks per row, without replacement: P(i among them) = p_i + sum_{j != i} p_j p_i / (1 - p_j)
    two = first_picks("confidence", den, n, 2, temp, seed=1)
    assert bool((two.sum(1) == 2).all())
    want = torch.tensor([p[i] + sum(p[j] * p[i] / (1 - p[j]) for j in range(L) if j != i) for i in range(L)])
    got = two.double().mean(0)
    se2 = (want * (1 - want) / n).sqrt()
    assert ((got - want).abs() <= 4.5 * se2).all(), (got, want)
    with_replacement = 1 - (1 - p) ** 2  # what drawing twice independently would give: distinguishable here
    assert (want - with_replacement).abs().max() > 10 * se2.max()


def test_alg_temp_tiny_equals_deterministic_and_bad_values_refused(tmp_path):
    from paradistill.generation import generate
    from paradistill.loader import load_checkpoint

    path, _, _ = official_replica("dream", tmp_path)
    tiny_chat_tokenizer(path)
    loaded = load_checkpoint(path)
    kw = dict(sampler="entropy", steps=4, gen_length=8, temperature=1e-6, progress=False, prompt="the cat")
    det = generate(loaded, 2, **kw).tokens
    assert torch.equal(generate(loaded, 2, alg_temp=0.0, **kw).tokens, det)
    assert torch.equal(generate(loaded, 2, alg_temp=1e-12, **kw).tokens, det)  # drawn, but as sharp as top-k
    hot = generate(loaded, 16, alg_temp=50.0, **kw).tokens  # nearly uniform positions: other orders appear
    assert not all(torch.equal(row, det[0]) for row in hot)
    with pytest.raises(UserError, match="--alg-temp -1"):
        build_sampler("entropy", alg_temp=-1.0)
    with pytest.raises(UserError, match="--alg-temp applies to the samplers"):
        build_sampler("ancestral", alg_temp=0.5)
    with pytest.raises(UserError, match="not 'random-remasking'"):
        build_sampler("random-remasking", alg_temp=0.5)
    from paradistill.sampling.remasking import LowConfidenceRemasking

    with pytest.raises(UserError, match="random remasking has none"):
        LowConfidenceRemasking("random", alg_temp=0.5)
    with pytest.raises(UserError, match="drop --alg-temp"):
        generate(loaded, 1, sampler="adjust", mode="marginal", alg_temp=0.5, gen_length=4, progress=False)


def test_alg_temp_on_the_command_line(tmp_path):
    import json

    from paradistill.cli import main

    path, _, _ = official_replica("llada", tmp_path)
    tiny_chat_tokenizer(path)
    out = tmp_path / "s.jsonl"
    assert main(["sample", str(path), "--sampler", "low-confidence", "--alg-temp", "0.5", "--gen-length", "4",
                 "--steps", "2", "--num", "2", "--prompt", "hello", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 2 and json.loads(out.read_text().splitlines()[0])["tokens"]
    assert main(["sample", str(path), "--sampler", "ancestral", "--alg-temp", "0.5", "--gen-length", "4",
                 "--out", str(out), "--overwrite"]) == 2
