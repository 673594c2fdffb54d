"""SDTT: the teacher's two-step target, the divergences, rounds (dt doubles) and exact mid-round resume."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import make_model
from paradistill.diffusion.mdlm import q_sample
from paradistill.diffusion.schedules import LogLinear
from paradistill.distill.sdtt import Forward, SDTTConfig, SDTTObjective, divergence, teacher_targets
from paradistill.methods.sdtt import distill_rounds, round_dir
from paradistill.errors import UserError
from paradistill.sampling.base import Denoiser, SamplerState, SamplingOptions
from paradistill.sampling.samplers import AncestralSampler
from paradistill.checkpoint import load_weights, save_checkpoint
from paradistill.loader import load_checkpoint
from paradistill.train.config import TrainConfig

L = 16


def _x0(tok, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(4, tok.vocab_size, (n, L), generator=g)
    x[:, 0] = tok.bos_id
    return x


def test_targets_come_from_first_step_where_it_unmasked_else_second(tiny_tokenizer):
    """The first step is AncestralSampler's step bit for bit; its unmasked positions take the teacher's
    distribution at t, every other masked position the distribution at t - dt given the first step's tokens."""
    tok, m, k = tiny_tokenizer, 8, 3
    model = make_model(tok.vocab_size, seed=1)
    x0 = _x0(tok, 6)
    keep = torch.zeros_like(x0, dtype=torch.bool)
    keep[:, 0] = True
    t = torch.full((6,), 1.0 - k / m, dtype=torch.float64)
    xt = q_sample(x0, LogLinear()(t)[0].float(), tok.mask_id, torch.Generator().manual_seed(2), keep=keep)
    target, first, x_mid = teacher_targets(model, Forward(tok.mask_id), xt, t, 1.0 / m, keep, LogLinear(),
                                           torch.Generator().manual_seed(5))
    denoiser = Denoiser(model, tok.mask_id)
    state = SamplerState(xt.clone(), keep, denoiser, torch.Generator().manual_seed(5), m, SamplingOptions(), step=k)
    state = AncestralSampler(cache=False).step(state)
    assert torch.equal(state.x, x_mid)
    masked = (xt == tok.mask_id) & ~keep
    assert torch.equal(first, masked & (x_mid != tok.mask_id))
    second = masked & ~first
    assert first.sum() > 5 and second.sum() > 5
    lp1, lp2 = denoiser(xt, t.float()), denoiser(x_mid, (t - 1.0 / m).float())
    assert torch.equal(target[first], lp1[first])
    assert torch.equal(target[second], lp2[second])
    assert not torch.allclose(lp1[second], lp2[second], atol=1e-4)  # the two steps really differ there


def test_divergences_closed_form():
    g = torch.Generator().manual_seed(0)
    q_lp = torch.log_softmax(torch.randn(5, 7, generator=g, dtype=torch.float64), -1)
    p_lp = torch.log_softmax(torch.randn(5, 7, generator=g, dtype=torch.float64), -1)
    q, p = q_lp.exp(), p_lp.exp()
    rev = divergence(q_lp, p_lp, "reverse_kl").double()
    fwd = divergence(q_lp, p_lp, "forward_kl").double()
    torch.testing.assert_close(rev, (q * (q.log() - p.log())).sum(-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fwd, (p * (p.log() - q.log())).sum(-1), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(rev, fwd, atol=1e-3)  # the two directions differ
    tv = divergence(q_lp, p_lp, "tv").double()
    torch.testing.assert_close(tv, 0.5 * (p - q).abs().sum(-1), atol=1e-6, rtol=1e-6)
    on_log_probs = 0.5 * (p_lp - q_lp).abs().sum(-1)  # upstream's bug
    assert (on_log_probs - tv).abs().min() > 0.1
    assert bool((tv <= 1).all())
    disjoint = divergence(torch.log(torch.tensor([1.0, 0.0])), torch.log(torch.tensor([0.0, 1.0])), "tv")
    assert float(disjoint) == pytest.approx(1.0)
    mse = divergence(q_lp, p_lp, "mse", mask_id=3).double()
    diff = (q_lp - p_lp) ** 2
    torch.testing.assert_close(mse, (diff.sum(-1) - diff[:, 3]) / 6, atol=1e-5, rtol=1e-5)
    for kind in ("reverse_kl", "forward_kl", "mse", "tv"):
        assert float(divergence(p_lp, p_lp, kind).abs().max()) < 1e-6


def test_times_leave_room_for_two_teacher_steps(tiny_tokenizer):
    tok = tiny_tokenizer
    model = make_model(tok.vocab_size)
    for sampling in ("uniform", "grid"):
        obj = SDTTObjective(model, "mdlm", SDTTConfig(t_sampling=sampling), 1 / 16, tok.mask_id, tok.pad_id, tok.bos_id)
        t = obj.sample_times(512, torch.Generator().manual_seed(0))
        assert float(t.min()) >= 2 / 16 - 1e-12 and float(t.max()) <= 1.0
        if sampling == "grid":
            assert set((t * 8).round().long().tolist()) == set(range(1, 9))  # {2dt, 4dt, ..., 1}
            assert torch.allclose(t * 8, (t * 8).round())
    assert SDTTConfig(from_steps=64, to_steps=8).rounds() == [(64, 32), (32, 16), (16, 8)]
    with pytest.raises(UserError, match="power of two"):
        SDTTConfig(from_steps=64, to_steps=12).validate()


def _teacher(tmp_path, tok):
    model = make_model(tok.vocab_size, seed=3)
    method = {"seq_len": L, "keep_bos": True, "diffusion": {"schedule": "loglinear", "eps": 1e-3}}
    return save_checkpoint(tmp_path / "teacher", model, "mdlm", tok, method)


def _run(tok, teacher, out, resume=False, **changes):
    data = _x0(tok, 48, seed=7).numpy().astype(np.uint16)
    tcfg = TrainConfig(batch_size=4, eval_every=0, checkpoint_every=1, keep_checkpoints=10, log_every=1,
                       accelerator="cpu", precision="32-true", ema=0.9)
    cfg = SDTTConfig(from_steps=8, to_steps=2, steps_per_round=4, lr=1e-2, warmup_steps=1, **changes)
    return distill_rounds(teacher, data, None, tok, tcfg, cfg, out, resume=resume, progress=False)


def test_rounds_double_dt_and_resume_mid_round_is_exact(tmp_path, tiny_tokenizer):
    tok = tiny_tokenizer
    teacher = _teacher(tmp_path, tok)
    a = tmp_path / "a"
    results = _run(tok, teacher, a)
    assert [(r.teacher_steps, r.student_steps) for r in results] == [(8, 4), (4, 2)]
    r1, r2 = (load_checkpoint(r.checkpoint) for r in results)
    assert r1.kind == r2.kind == "mdlm"
    assert r2.method["sdtt"]["dt"] == pytest.approx(2 * r1.method["sdtt"]["dt"]) == pytest.approx(0.25)
    assert r2.method["sdtt"]["teacher"] == str(results[0].checkpoint)  # round 1's student is round 2's teacher
    assert r1.method["sdtt"]["teacher"] == str(teacher)
    assert load_checkpoint(a).path == results[-1].checkpoint  # OUT/latest.json names the last student
    first_step = load_weights(round_dir(a, 2, 2) / "checkpoints" / "step_0000001" / "model.safetensors")
    teacher_w = load_weights(results[0].checkpoint / "ema.safetensors")
    assert any(not torch.equal(first_step[k], teacher_w[k]) for k in first_step)  # it trained
    with pytest.raises(UserError, match="--resume"):
        _run(tok, teacher, a)
    # crash after step 2 of round 2: drop later checkpoints, point latest.json back at step 2
    b = tmp_path / "b"
    shutil.copytree(a, b)
    rdir = round_dir(b, 2, 2)
    for step in (3, 4):
        shutil.rmtree(rdir / "checkpoints" / f"step_{step:07d}")
    (rdir / "latest.json").write_text(json.dumps({"path": "checkpoints/step_0000002", "step": 2, "final": False}))
    (b / "latest.json").unlink()
    round1_mtime = (round_dir(b, 1, 4) / "latest.json").stat().st_mtime_ns
    resumed = _run(tok, teacher, b, resume=True)
    assert resumed[0].skipped and not resumed[1].skipped and resumed[1].final
    assert (round_dir(b, 1, 4) / "latest.json").stat().st_mtime_ns == round1_mtime
    for name in ("model.safetensors", "ema.safetensors"):
        wa, wb = load_weights(results[1].checkpoint / name), load_weights(resumed[1].checkpoint / name)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_optimizer_carried_over_when_not_reset(tmp_path, tiny_tokenizer):
    tok = tiny_tokenizer
    teacher = _teacher(tmp_path, tok)
    kept = _run(tok, teacher, tmp_path / "keep", reset_optimizer=False)
    reset = _run(tok, teacher, tmp_path / "reset", reset_optimizer=True)
    state = lambda r: torch.load(r.checkpoint / "train_state.pt", weights_only=False)["optimizer"]["state"]  # noqa: E731
    steps_kept = [float(s["step"]) for s in state(kept[1]).values()]
    steps_reset = [float(s["step"]) for s in state(reset[1]).values()]
    assert set(steps_kept) == {8.0} and set(steps_reset) == {4.0}  # Adam's step count carried over


def test_official_protocol_carries_raw_weights_adam_and_ema(tmp_path, tiny_tokenizer):
    """protocol=official: round 2's teacher and student start from round 1's raw weights (not its EMA), and round 2
    continues round 1's Adam (step count) and EMA (update count and values)."""
    from paradistill.methods.sdtt import build_round

    tok = tiny_tokenizer
    teacher = _teacher(tmp_path, tok)
    res = _run(tok, teacher, tmp_path / "official", protocol="official")
    state = lambda r: torch.load(r.checkpoint / "train_state.pt", weights_only=False)  # noqa: E731
    assert {float(s["step"]) for s in state(res[1])["optimizer"]["state"].values()} == {8.0}
    assert state(res[1])["ema"]["updates"] == 8 and state(res[0])["ema"]["updates"] == 4
    default = _run(tok, teacher, tmp_path / "default")
    assert state(default[1])["ema"]["updates"] == 4  # a fresh EMA per round
    raw = load_weights(res[0].checkpoint / "model.safetensors")
    ema = load_weights(res[0].checkpoint / "ema.safetensors")
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)  # the two candidates differ
    cfg = SDTTConfig(from_steps=8, to_steps=2, steps_per_round=4, protocol="official")
    student, objective, _, _ = build_round(res[0].checkpoint, cfg, 2, 4)
    for name, p in student.state_dict().items():
        if name in raw:
            assert torch.equal(p, raw[name]), name
    student1, _, _, _ = build_round(res[0].checkpoint, SDTTConfig(from_steps=8, to_steps=2), 2, 4)
    assert all(torch.equal(p, ema[n]) for n, p in student1.state_dict().items() if n in ema)
    with pytest.raises(UserError, match="sdtt.protocol"):
        SDTTConfig(protocol="paper").validate()


def test_cli_help_names_every_option():
    out = subprocess.run([sys.executable, "-m", "paradistill.cli", "distill", "sdtt", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for opt in ("--teacher", "--from-steps", "--to-steps", "--divergence", "--steps-per-round", "--protocol", "--recipe",
                "--out", "--resume", "KEY=VALUE", "reverse_kl"):
        assert opt in out


def _gd_teacher(tmp_path, tok):
    model = make_model(tok.vocab_size, seed=4, noise_embed="dense")
    method = {"seq_len": L, "keep_bos": True, "diffusion": {"schedule": "loglinear", "eps": 1e-3},
              "gumbel": {"noise": "gumbel", "noise_temperature": 0.85}}
    return save_checkpoint(tmp_path / "gd_teacher", model, "gd-mdlm", tok, method)


def test_gd_student_teacher_and_student_share_the_inference_noise(tmp_path, tiny_tokenizer):
    """On a Gumbel-distilled student the noise is drawn as at inference (noise_conditioned_denoiser) and the
    teacher's two passes and the student's pass all see that same noise."""
    from paradistill.distill.gumbel import noise_conditioned_denoiser
    from paradistill.distill.sdtt import SharedNoise

    tok, m, k, bsz = tiny_tokenizer, 8, 2, 6
    loaded = load_checkpoint(_gd_teacher(tmp_path, tok))
    model = loaded.model
    shared = SharedNoise(loaded.method, model.cfg, tok.mask_id)
    forward = Forward(tok.mask_id, None, shared)
    x0 = _x0(tok, bsz)
    keep = torch.zeros_like(x0, dtype=torch.bool)
    keep[:, 0] = True
    t = torch.full((bsz,), 1.0 - k / m, dtype=torch.float64)
    xt = q_sample(x0, LogLinear()(t)[0].float(), tok.mask_id, torch.Generator().manual_seed(2), keep=keep)
    cond = forward.draw(x0, torch.Generator().manual_seed(11))
    target, first, x_mid = teacher_targets(model, forward, xt, t, 1.0 / m, keep, LogLinear(),
                                           torch.Generator().manual_seed(5), x0, cond)
    denoiser = noise_conditioned_denoiser(loaded, bsz, L, torch.Generator().manual_seed(11))
    state = SamplerState(xt.clone(), keep, denoiser, torch.Generator().manual_seed(5), m, SamplingOptions(), step=k)
    state = AncestralSampler(cache=False).step(state)
    assert torch.equal(state.x, x_mid)
    second = (xt == tok.mask_id) & ~keep & ~first
    torch.testing.assert_close(target[first], denoiser(xt, t.float())[first], atol=0, rtol=0)
    torch.testing.assert_close(target[second], denoiser(x_mid, (t - 1 / m).float())[second], atol=0, rtol=0)
    student = forward(model, xt, t, x0, cond)
    torch.testing.assert_close(student, denoiser(xt, t.float()), atol=0, rtol=0)
    other = forward(model, xt, t, x0, forward.draw(x0, torch.Generator().manual_seed(12)))
    assert not torch.allclose(other[first], student[first], atol=1e-4)  # the noise matters


def test_sdtt_on_gd_student_round_trip(tmp_path, tiny_tokenizer):
    from paradistill import api

    tok = tiny_tokenizer
    teacher = _gd_teacher(tmp_path, tok)
    data = _x0(tok, 24, seed=7).numpy().astype(np.uint16)
    tcfg = TrainConfig(batch_size=4, eval_every=0, checkpoint_every=0, log_every=1, accelerator="cpu",
                       precision="32-true", ema=0.9)
    cfg = SDTTConfig(from_steps=8, to_steps=4, steps_per_round=2, lr=1e-2, warmup_steps=1)
    (res,) = distill_rounds(teacher, data, data[:8], tok, tcfg, cfg, tmp_path / "gd_sdtt", progress=False)
    student = api.load(tmp_path / "gd_sdtt")
    assert student.kind == "gd-mdlm" and student.method["gumbel"]["noise_temperature"] == 0.85
    assert res.last_val is not None and res.last_val > 0
    out = api.generate(student, 3, steps=4, batch_size=3, progress=False)
    assert out.tokens.shape == (3, L) and not bool((out.tokens == tok.mask_id).any())


def _bd3_teacher(tmp_path, tok, block: int = 4):
    model = make_model(tok.vocab_size, seed=5)
    method = {"seq_len": L, "keep_bos": True, "diffusion": {"schedule": "loglinear", "eps": 1e-3},
              "block_size": block}
    return save_checkpoint(tmp_path / "bd3_teacher", model, "bd3lm", tok, method)


def test_bd3lm_teacher_sees_clean_previous_blocks_like_its_sampler(tmp_path, tiny_tokenizer):
    """BD3-LM: one time per block; the teacher's distribution on block b is what the block sampler computes
    for that block given the clean blocks before it; the first step uses each block's own time."""
    from paradistill.distill.sdtt import forward_for
    from paradistill.sampling.bd3lm import BD3Denoiser

    tok, block, bsz = tiny_tokenizer, 4, 5
    loaded = load_checkpoint(_bd3_teacher(tmp_path, tok, block))
    cfg = SDTTConfig(from_steps=4, to_steps=2)
    forward = forward_for("bd3lm", loaded.method, loaded.model.cfg, tok.mask_id, cfg)
    obj = SDTTObjective(loaded.model, "bd3lm", cfg, 0.25, tok.mask_id, tok.pad_id, tok.bos_id, forward=forward)
    x0 = _x0(tok, bsz)
    t = obj.times(x0.shape, torch.Generator().manual_seed(0))  # [B, L] float64
    assert t.shape == (bsz, L) and bool((t.view(bsz, -1, block) == t[:, ::block, None]).all())
    assert t[:, ::block].unique().numel() > 4 and float(t.min()) >= 0.5
    keep = torch.zeros_like(x0, dtype=torch.bool)
    keep[:, 0] = True
    xt = q_sample(x0, LogLinear()(t)[0].float(), tok.mask_id, torch.Generator().manual_seed(2), keep=keep)
    u = torch.rand(x0.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)  # the step's uniforms
    target, first, _ = teacher_targets(loaded.model, forward, xt, t, 0.25, keep, LogLinear(),
                                       torch.Generator().manual_seed(5), x0)
    alpha = lambda s: 1 - (1 - 1e-3) * s  # noqa: E731
    p = (alpha(t - 0.25) - alpha(t)) / (1 - alpha(t))
    assert torch.equal(first, (xt == tok.mask_id) & ~keep & (u < p))
    den = BD3Denoiser(loaded.model, tok.mask_id, block, use_cache=False)
    for start in range(0, L, block):
        ref = den.block_log_probs(x0, xt[:, start:start + block], start, start + block)
        sel = first[:, start:start + block]
        torch.testing.assert_close(target[:, start:start + block][sel], ref[sel], atol=1e-5, rtol=1e-5)


def test_sdtt_on_bd3lm_round_trip(tmp_path, tiny_tokenizer):
    from paradistill import api

    tok = tiny_tokenizer
    teacher = _bd3_teacher(tmp_path, tok)
    data = _x0(tok, 24, seed=7).numpy().astype(np.uint16)
    tcfg = TrainConfig(batch_size=4, eval_every=0, checkpoint_every=0, log_every=1, accelerator="cpu",
                       precision="32-true", ema=0.9)
    cfg = SDTTConfig(from_steps=4, to_steps=2, steps_per_round=2, lr=1e-2, warmup_steps=1)
    distill_rounds(teacher, data, None, tok, tcfg, cfg, tmp_path / "bd3_sdtt", progress=False)
    student = api.load(tmp_path / "bd3_sdtt")
    assert student.kind == "bd3lm" and student.method["block_size"] == 4
    out = api.generate(student, 3, steps=2, batch_size=3, progress=False)
    assert out.tokens.shape == (3, L) and not bool((out.tokens == tok.mask_id).any())


def test_headroom_oracle_minimises_the_expected_divergence():
    """experiments/sdtt/headroom.py: the per-position oracle (geometric mean for reverse KL, arithmetic mean for forward
    KL) has a lower mean divergence to the target draws than any perturbation of it, and than the first draw."""
    from experiments.sdtt import headroom

    gen = torch.Generator().manual_seed(0)
    targets = torch.log_softmax(2 * torch.randn(6, 2, 3, 7, generator=gen), dim=-1)  # K draws of [B, L, V]
    counted = torch.ones(2, 3, dtype=torch.bool)
    for kind in ("reverse_kl", "forward_kl"):
        best = headroom.oracle(targets, kind)
        value = headroom.divergence_mean(best, targets, kind, counted)
        assert value < headroom.divergence_mean(targets[0], targets, kind, counted)
        for _ in range(20):
            other = torch.log_softmax(best + 0.05 * torch.randn(best.shape, generator=gen), dim=-1)
            assert value < headroom.divergence_mean(other, targets, kind, counted)


def test_oracle_student_keeps_decoded_tokens_and_equals_a_teacher_that_ignores_context():
    """experiments/sdtt/perfect_student.py: the best one-pass student of a round (geometric mean of the two-step targets) is a
    distribution, one-hot on every decoded token, and exactly the teacher when the teacher's prediction does not
    depend on what the first step decoded (then every draw gives the same target)."""
    from experiments.sdtt import perfect_student
    from paradistill.diffusion.schedules import LogLinear
    from paradistill.sampling.base import Denoiser

    mask, vocab = 3, 9
    x = torch.tensor([[0, 5, 3, 3, 7, 3], [0, 3, 3, 3, 3, 2]])
    t = torch.tensor([0.6, 0.9])
    real = Denoiser(make_model(vocab), mask)
    out = perfect_student.OracleDenoiser(real, LogLinear(), 0.1, 4, torch.Generator().manual_seed(0))(x, t)
    assert torch.allclose(out.exp().sum(-1), torch.ones(2, 6), atol=1e-5)
    decoded = x != mask
    assert torch.equal(out.argmax(-1)[decoded], x[decoded]) and bool((out.exp()[decoded].max(-1).values > 0.999).all())

    prior = torch.log_softmax(torch.randn(vocab, generator=torch.Generator().manual_seed(1)), -1)
    prior[mask] = -float("inf")
    prior = torch.log_softmax(prior, -1)

    class ContextFree:  # SUBS: one-hot on decoded tokens, a fixed distribution elsewhere
        mask_id = mask

        def __call__(self, x, t):
            lp = prior.expand(*x.shape, vocab).clone()
            onehot = torch.full((vocab,), -float("inf"))
            return torch.where((x != mask)[..., None], onehot.expand_as(lp).scatter(-1, x[..., None], 0.0), lp)

    ctx_free = perfect_student.OracleDenoiser(ContextFree(), LogLinear(), 0.2, 3, torch.Generator().manual_seed(0))(x, t)
    assert torch.allclose(ctx_free[~decoded].exp(), prior.exp().expand(int((~decoded).sum()), vocab), atol=1e-6)
    inner = perfect_student.OracleDenoiser(ContextFree(), LogLinear(), 0.1, 2, torch.Generator().manual_seed(0))
    nested = perfect_student.OracleDenoiser(inner, LogLinear(), 0.2, 2, torch.Generator().manual_seed(1))(x, t)  # --rounds 2
    assert torch.allclose(nested[~decoded].exp(), prior.exp().expand(int((~decoded).sum()), vocab), atol=1e-6)


def test_generate_with_a_custom_denoiser(tmp_path, tiny_tokenizer):
    """generation.generate(denoiser=...) samples with the given (x, t) -> log-probs in place of the checkpoint's
    model (what experiments/sdtt/perfect_student.py samples its oracle student with): a denoiser certain of one token writes it
    at every generated position and keeps the template's BOS; an autoregressive checkpoint refuses one."""
    from paradistill import api

    tok = tiny_tokenizer
    loaded = load_checkpoint(_teacher(tmp_path, tok))
    word = tok.vocab_size - 1

    class Certain:  # the Denoiser interface: (x, t) -> log-probs, the mask id, whether t is an input
        mask_id, time_conditioned = tok.mask_id, True

        def __call__(self, x, t):
            lp = torch.full((*x.shape, tok.vocab_size), -float("inf"))
            lp[..., word] = 0.0
            return torch.where((x != tok.mask_id)[..., None], torch.full_like(lp, -float("inf")).scatter(
                -1, x[..., None], 0.0), lp)

    certain = Certain()

    out = api.generate(loaded, 3, steps=4, batch_size=2, progress=False, denoiser=certain)
    assert out.tokens.shape == (3, L) and bool((out.tokens[:, 1:] == word).all())
    assert bool((out.tokens[:, 0] == tok.bos_id).all())
    own = api.generate(loaded, 3, steps=4, batch_size=2, progress=False)
    assert not bool((own.tokens[:, 1:] == word).all())
    ar = load_checkpoint(save_checkpoint(tmp_path / "ar", make_model(tok.vocab_size), "ar", tok, {"seq_len": L}))
    with pytest.raises(UserError, match="custom denoiser"):
        api.generate(ar, 1, progress=False, denoiser=certain)
