"""Gumbel Distillation's optional logit skip: logits += gate(h_i) * xi_i at noise-injected positions."""

from __future__ import annotations

import pytest
import torch

from paradistill.distill import gumbel_noise as gn
from paradistill.distill.gumbel import GumbelConfig, NoiseInjected
from paradistill.distill.teachers import GrammarTeacher
from paradistill.errors import UserError
from paradistill.models.noise_embed import noise_as_logits, topk_softmax

from conftest import make_model


def test_skip_starts_at_zero_and_adds_exactly_gate_times_noise_at_masked_positions_only():
    plain = make_model(10, noise_embed="dense", extra_mode="add")
    skip = make_model(10, noise_embed="dense", extra_mode="add", noise_logit_skip=True)
    skip.load_state_dict({**plain.state_dict(), **{k: v for k, v in skip.state_dict().items() if "noise_skip" in k}})
    assert skip.noise_skip.gate.weight.abs().sum() == 0 and skip.noise_skip.gate.bias.abs().sum() == 0
    idx = torch.tensor([[1, 5, 3, 6, 3]])  # MASK = 3 at positions 2 and 4
    xi = gn.fresh_noise(torch.tensor([4]), 5, 10)
    base = NoiseInjected(plain, xi, 3)(idx)
    assert torch.equal(NoiseInjected(skip, xi, 3)(idx).logits, base.logits)  # zero gate: the base model
    with torch.no_grad():
        skip.noise_skip.gate.weight.normal_()
        skip.noise_skip.gate.bias.fill_(0.3)
    out = NoiseInjected(skip, xi, 3)(idx)
    gate = out.hidden @ skip.noise_skip.gate.weight[0] + 0.3  # [1, 5]
    masked = idx == 3
    expected = base.logits + (gate * masked)[..., None] * xi
    assert torch.allclose(out.logits, expected, atol=1e-5)
    assert torch.equal(out.logits[~masked], base.logits[~masked])  # unmasked positions never see the noise


def test_a_large_gate_on_the_teachers_logits_reproduces_the_teachers_sample():
    """The structure the skip encodes: with posterior noise, argmax(l + xi) is the observed token."""
    teacher = GrammarTeacher()
    x = teacher.grammar.sample(6, 24, torch.Generator().manual_seed(0))
    logp = teacher.next_token_log_probs(x)  # entry i predicts token i + 1
    xi = gn.extract_posterior(logp, x, torch.arange(6), dtype=torch.float64)
    recon = (logp[:, :-1].double() + xi[:, 1:]).argmax(-1)
    assert torch.equal(recon, x[:, 1:])


def test_sparse_noise_as_logits_keeps_the_topk_softmax_and_clamps_the_tail():
    xi = torch.randn(2, 3, 20, dtype=torch.float64)
    sp = topk_softmax(xi, 5)
    dense = noise_as_logits(sp, 20)
    kth = xi.topk(5).values[..., -1:]
    expected = torch.maximum(xi, kth)  # the tail raised to the k-th value, then shifted by a constant
    shift = (dense - expected).reshape(2, 3, -1)
    assert torch.allclose(shift, shift[..., :1].expand_as(shift), atol=1e-9)
    assert torch.equal(dense.argmax(-1), xi.argmax(-1))


@pytest.mark.parametrize("student,embed", [("mdlm", "dense"), ("bd3lm", "topk")])
def test_gd_objective_trains_the_gate_and_the_student_samples(student, embed):
    from test_gumbel import _objective

    obj = _objective(student, embed=embed)
    model = make_model(360, noise_embed=embed, noise_topk=8, extra_mode="add", noise_logit_skip=True).train()
    batch = GrammarTeacher().grammar.sample(4, 16, torch.Generator().manual_seed(0))
    loss, _ = obj.loss(model, batch, torch.Generator().manual_seed(7))
    loss.backward()
    assert torch.isfinite(loss) and model.noise_skip.gate.weight.grad.abs().sum() > 0
    # gradient descent on the gate's bias alone lowers the loss: the noise is informative through the skip
    opt = torch.optim.SGD([model.noise_skip.gate.bias], lr=0.1)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss, _ = obj.loss(model, batch, torch.Generator().manual_seed(7))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_bad_skip_configurations_are_clear_errors():
    with pytest.raises(UserError, match="logit_skip"):
        GumbelConfig(noise="none", logit_skip=True).validate()
    with pytest.raises(UserError, match="noise_logit_skip"):
        make_model(10, noise_logit_skip=True)


def test_cli_trains_samples_and_reloads_a_skip_student(tmp_path):
    from paradistill import api
    from paradistill.cli import main

    out = tmp_path / "gd-skip"
    common = ["--recipe", "tiny", "data.num_tokens=20000", f"data.cache_dir={tmp_path / 'data'}", "data.seq_len=16",
              "model.dim=32", "model.n_layers=1", "model.n_heads=2", "train.max_steps=3", "train.batch_size=4",
              "train.eval_every=3", "train.eval_batches=1", "train.checkpoint_every=0", "train.warmup_steps=1"]
    assert main(["distill", "gumbel", "--teacher", "builtin-generator", "--logit-skip", "--out", str(out),
                 "gumbel.extra_mode=add"] + common) == 0
    loaded = api.load(out)
    assert loaded.model.noise_skip is not None and loaded.method["gumbel"]["logit_skip"] is True
    res = api.generate(loaded, 3, sampler="ancestral", steps=4, progress=False)
    assert res.tokens.shape == (3, 16) and not (res.tokens == 3).any()
