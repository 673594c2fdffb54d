"""AR -> masked-diffusion adaptation (diffusion/adapt.py, methods/base.py): attention annealing, the shifted
output convention, the weight copy."""

from __future__ import annotations

import pytest
import torch

from conftest import make_model
from paradistill.diffusion.adapt import (AdaptConfig, AdaptedBD3Objective, AdaptedMDLMObjective, anneal_fraction,
                                         annealed_mask, check_adaptable, copy_ar_weights, pair_priorities)
from paradistill.diffusion.bd3lm import BD3Config, block_attention_mask, two_stream_positions
from paradistill.diffusion.objectives import DiffusionConfig
from paradistill.errors import UserError

L = 12


def mdlm_objective(anneal_steps: int, **kw) -> AdaptedMDLMObjective:
    return AdaptedMDLMObjective(DiffusionConfig(), mask_id=3, pad_id=0, bos_id=1,
                                adapt=AdaptConfig(anneal_steps=anneal_steps, **kw))


def training_mask(obj, step: int, length: int = L):
    obj.set_step(step)
    obj._training = True
    try:
        return obj.attention(length, "cpu")
    finally:
        obj._training = False


def as_bool(attn, length: int = L) -> torch.Tensor:
    if isinstance(attn, str):
        assert attn == "bidirectional"
        return torch.ones(length, length, dtype=torch.bool)
    return attn


def test_mdlm_annealing_causal_at_zero_bidirectional_after_and_monotone():
    obj = mdlm_objective(anneal_steps=10)
    causal = torch.tril(torch.ones(L, L, dtype=torch.bool))
    assert torch.equal(as_bool(training_mask(obj, 0)), causal)  # exactly causal at step 0
    previous = causal
    opened = []
    for step in range(1, 10):
        m = as_bool(training_mask(obj, step))
        assert torch.equal(m & previous, previous)  # nothing that was open closes again
        assert torch.equal(m & causal, causal)  # the causal part is always open
        opened.append(int(m.sum()))
        previous = m
    assert opened == sorted(opened) and opened[0] > int(causal.sum()) and opened[-1] < L * L
    for step in (10, 11, 500):  # exactly bidirectional from the stated step on
        assert training_mask(obj, step) == "bidirectional"
    # roughly step/anneal_steps of the forbidden pairs open (the priorities are uniform)
    forbidden = L * L - int(causal.sum())
    half = int(as_bool(training_mask(obj, 5)).sum()) - int(causal.sum())
    assert 0.3 * forbidden < half < 0.7 * forbidden


def test_validation_uses_the_target_mask_and_zero_steps_means_no_annealing():
    obj = mdlm_objective(anneal_steps=100)
    obj.set_step(0)
    assert obj.attention(L, "cpu") == "bidirectional"  # outside loss(): evaluation sees the final model
    assert training_mask(mdlm_objective(anneal_steps=0), 0) == "bidirectional"
    assert anneal_fraction(0, 0) == 1.0 and anneal_fraction(0, 4) == 0.0 and anneal_fraction(2, 4) == 0.5


def test_loss_trains_with_the_annealed_mask():
    """At step 0 the MDLM loss must see exactly the causal forward: compare against a hand-made causal pass."""
    torch.manual_seed(0)
    model = make_model(12)
    obj = mdlm_objective(anneal_steps=5)
    obj.set_step(0)
    seen = []
    real_forward = model.forward

    def spy(idx, **kw):
        seen.append(kw["attn"])
        return real_forward(idx, **kw)

    model.forward = spy
    x = torch.randint(4, 12, (2, 8))
    x[:, 0] = 1
    obj.loss(model, x, torch.Generator().manual_seed(0))
    assert torch.equal(seen[-1], torch.tril(torch.ones(8, 8, dtype=torch.bool)))
    obj.eval_terms(model, x, torch.Generator().manual_seed(0))
    assert seen[-1] == "bidirectional"


def test_bd3lm_annealing_goes_from_its_causal_part_to_the_block_mask():
    obj = AdaptedBD3Objective(BD3Config(block_size=4), DiffusionConfig(), 3, 0, 1, AdaptConfig(anneal_steps=8))
    target = block_attention_mask(L, 4)
    pos = two_stream_positions(L)
    causal = pos[None, :] <= pos[:, None]

    def at(step):
        obj.set_step(step)
        obj._training = True
        try:
            return obj.attention_mask(L, "cpu")
        finally:
            obj._training = False

    assert torch.equal(at(0), target & causal)
    assert torch.equal(at(0)[L:, L:], torch.tril(torch.ones(L, L, dtype=torch.bool)))  # clean stream: plain AR
    prev = at(0)
    for s in range(1, 8):
        m = at(s)
        assert torch.equal(m & prev, prev) and torch.equal(m & target, m)
        prev = m
    assert torch.equal(at(8), target)


def test_annealed_mask_extremes_for_any_priorities():
    prio = pair_priorities(L, L, seed=3)
    pos = torch.arange(L)
    full = torch.ones(L, L, dtype=torch.bool)
    assert torch.equal(annealed_mask(full, pos, pos, 0.0, prio), torch.tril(full))
    assert torch.equal(annealed_mask(full, pos, pos, 1.0, prio), full)


def test_shifted_output_realigns_logits_and_hidden():
    """output_shift: output i of the realigned model is the raw network's output i-1 (Dream's convention)."""
    raw = make_model(12, seed=1)
    shifted = make_model(12, seed=1, output_shift=True)
    shifted.load_state_dict(raw.state_dict())
    x = torch.randint(0, 12, (3, 9))
    a, b = raw(x, attn="bidirectional"), shifted(x, attn="bidirectional")
    assert torch.equal(b.logits[:, 1:], a.logits[:, :-1])
    assert torch.equal(b.hidden[:, 1:], a.hidden[:, :-1])
    assert torch.equal(b.logits[:, 0], a.logits[:, 0])
    # a causal AR's next-token prediction for position i sits, after the shift, at position i
    ar_next = raw(x, attn="causal").logits[:, 4]  # predicts x[:, 5]
    assert torch.equal(shifted(x, attn="causal").logits[:, 5], ar_next)
    with pytest.raises(UserError, match="KV cache"):
        shifted(x, attn="causal", cache=shifted.new_cache(3, 16))


def test_copy_ar_weights_copies_everything_it_can():
    ar = make_model(12, seed=1)
    mdlm = make_model(12, seed=2, time_conditioning=True, cond_dim=16)
    report = copy_ar_weights(mdlm, ar)
    src, dst = ar.state_dict(), mdlm.state_dict()
    for k in src:
        assert torch.equal(dst[k], src[k]), k
    assert report["kept_init"] and all("adaln" in k or "time_embed" in k for k in report["kept_init"])
    # equal weights -> equal causal forward (adaLN-zero starts as the identity)
    x = torch.randint(0, 12, (2, 7))
    torch.testing.assert_close(mdlm(x, attn="causal", sigma=torch.rand(2)).logits, ar(x, attn="causal").logits)


def test_copy_ar_weights_reinit_head_and_mismatches():
    ar = make_model(12, seed=1, tie_weights=False)
    mdlm = make_model(12, seed=2, tie_weights=False)
    before = mdlm.head.weight.detach().clone()
    copy_ar_weights(mdlm, ar, reinit_head=True)
    assert torch.equal(mdlm.head.weight, before) and torch.equal(mdlm.embed.weight, ar.embed.weight)
    with pytest.raises(UserError, match="vocabulary"):
        copy_ar_weights(make_model(13), ar)
    with pytest.raises(UserError, match="architecture"):
        copy_ar_weights(make_model(12, dim=64, tie_weights=False), ar)


def test_check_adaptable_errors():
    with pytest.raises(UserError, match="mdlm only"):
        check_adaptable("bd3lm", AdaptConfig(shift=True), True, True)
    with pytest.raises(UserError, match="position 0"):
        check_adaptable("mdlm", AdaptConfig(shift=True), False, True)
    with pytest.raises(UserError, match="tie_weights"):
        check_adaptable("mdlm", AdaptConfig(reinit_head=True), True, True)
    with pytest.raises(UserError, match="anneal_steps"):
        AdaptConfig(anneal_steps=-1).validate()


def test_load_ar_backbone_sources(tmp_path, tiny_tokenizer):
    """--init-from-ar takes a loaded backbone or any checkpoint reference of an AR kind (through paradistill.loading)."""
    from paradistill.checkpoint import save_checkpoint
    from paradistill.methods.base import load_ar_backbone

    ar = make_model(tiny_tokenizer.vocab_size, seed=4)
    assert load_ar_backbone(ar) is ar  # an already loaded model object
    save_checkpoint(tmp_path / "ar", ar, "ar", tiny_tokenizer)
    loaded = load_ar_backbone(str(tmp_path / "ar"))
    assert torch.equal(loaded.embed.weight, ar.embed.weight)
    save_checkpoint(tmp_path / "mdlm", ar, "mdlm", tiny_tokenizer)
    with pytest.raises(UserError, match="needs one of"):
        load_ar_backbone(str(tmp_path / "mdlm"))
    with pytest.raises(UserError, match="someone/gpt2-like"):
        load_ar_backbone("hf:someone/gpt2-like")  # offline and not in the hub cache
