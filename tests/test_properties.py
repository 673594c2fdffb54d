"""Property tests (hypothesis) for the sampler interface: for random lengths, block sizes, prompts, K and
steps, no MASK is left, fixed tokens never change, and NFE equals the number of denoiser passes made."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paradistill.diffusion.mdlm import subs_log_probs
from paradistill.sampling.base import Denoiser, run_sampler
from paradistill.sampling.registry import build_sampler

MASK, VOCAB = 3, 11


class CountingDenoiser(Denoiser):
    """A fixed random 'model' (logits depend on position and the previous token) that counts its passes."""

    def __init__(self, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(64, VOCAB, VOCAB, generator=g) * 2
        self.mask_id, self.time_conditioned, self.extra, self.calls = MASK, False, None, 0

    def __call__(self, x, t):
        self.calls += 1
        prev = torch.roll(x, 1, dims=1)
        logits = self.table[torch.arange(x.shape[1]) % 64][None].expand(x.shape[0], -1, -1, -1)
        logits = logits.gather(2, prev[..., None, None].expand(-1, -1, 1, VOCAB)).squeeze(2)
        return subs_log_probs(logits, x, MASK)


@st.composite
def problems(draw):
    block = draw(st.sampled_from([None, 1, 2, 4]))
    n_blocks = draw(st.integers(1, 6))
    length = (block or 1) * n_blocks if block else draw(st.integers(2, 24))
    batch = draw(st.integers(1, 3))
    prompt = draw(st.integers(0, length))
    infill = draw(st.lists(st.integers(0, length - 1), max_size=4))
    return dict(block=block, length=length, batch=batch, prompt=prompt, infill=infill,
                steps=draw(st.integers(1, 12)), seed=draw(st.integers(0, 10_000)),
                sampler=draw(st.sampled_from(["ancestral", "ancestral-nocache", "first-hitting", "confidence",
                                              "entropy", "margin"])),
                k=draw(st.sampled_from([None, 1, 2, 3])))


def setup(p):
    g = torch.Generator().manual_seed(p["seed"])
    x = torch.randint(4, VOCAB, (p["batch"], p["length"]), generator=g)
    fixed = torch.zeros_like(x, dtype=torch.bool)
    fixed[:, : p["prompt"]] = True
    fixed[:, p["infill"]] = True
    return x, fixed, g


@settings(max_examples=120, deadline=None)
@given(problems())
def test_sampler_invariants(p):
    x, fixed, g = setup(p)
    k = p["k"] if p["sampler"] in ("confidence", "entropy", "margin") else None
    sampler = build_sampler(p["sampler"], block_size=p["block"], tokens_per_step=k)
    den = CountingDenoiser(p["seed"])
    out = run_sampler(sampler, den, x, fixed, g, p["steps"])
    assert (out.tokens != MASK).all()
    assert torch.equal(out.tokens[fixed], x[fixed])
    assert out.nfe == den.calls
    free = (~fixed).sum(1).max().item()
    if p["block"] is None:
        if p["sampler"] == "first-hitting":
            assert out.nfe == free
        elif k is not None:
            assert out.nfe == math.ceil(free / k) if free else out.nfe == 0
        elif free:
            assert out.nfe <= p["steps"] + 1  # + at most one final fill
    else:  # per block: at most `steps` passes (first-hitting / top-k: one per token) plus one final fill
        blocks = p["length"] // p["block"]
        assert out.nfe <= blocks * (max(p["steps"], p["block"]) + 1)


@settings(max_examples=40, deadline=None)
@given(problems())
def test_same_seed_same_samples(p):
    x, fixed, _ = setup(p)
    runs = [run_sampler(build_sampler(p["sampler"], block_size=p["block"]), CountingDenoiser(1), x, fixed,
                        torch.Generator().manual_seed(p["seed"]), p["steps"]).tokens for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
