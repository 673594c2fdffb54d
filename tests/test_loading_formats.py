"""Every published DiT format loads into the backbone with the logits of an independent reference forward
(tests/loading_fixtures.py, written from the architecture description), then samples through every sampler."""

from __future__ import annotations

import pytest
import torch

from loading_fixtures import (BLOCKS, LENGTH, VOCAB, bd3lm_hub_config, block_diff_mask, dit_state, mdlm_hub_config,
                              reference_logits, save_safetensors, sdtt_config)

MASK = VOCAB - 1
SAMPLERS = ("ancestral", "ancestral-nocache", "first-hitting", "confidence", "entropy", "margin")


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("PARADISTILL_HOME", str(tmp_path / "home"))


def _inputs(seed=0, batch=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, VOCAB - 1, (batch, LENGTH), generator=g)
    masked = torch.rand(batch, LENGTH, generator=g) < 0.5
    return torch.where(masked, torch.full_like(x, MASK), x)


def assert_close(ours, ref):
    scale = ref.abs().max().item()
    diff = (ours - ref).abs().max().item()
    assert diff <= 1e-4 * scale, f"max |diff| {diff:.3g} > 1e-4 x logit scale {scale:.3g}"


def sample_all(loaded, samplers=SAMPLERS, **kw):
    from paradistill import api

    for s in samplers:
        res = api.generate(loaded, 2, length=LENGTH, sampler=s, steps=4, progress=False, seed=1, **kw)
        assert res.tokens.shape == (2, LENGTH)
        assert bool((res.tokens != MASK).all()) and bool((res.tokens >= 0).all()) and bool((res.tokens < VOCAB).all())


@pytest.mark.parametrize("prefix", ["backbone.", ""])
def test_mdlm_time_agnostic(tmp_path, prefix):
    from paradistill import loading

    state = dit_state(1)
    src = save_safetensors(state, tmp_path / "mdlm-owt", prefix=prefix, config=mdlm_hub_config())
    loaded = loading.load(src)
    assert loaded.kind == "mdlm" and loaded.method["source_format"] == "mdlm"
    assert not loaded.model.cfg.time_conditioning and loaded.model.cfg.adaln  # fixed time 0: every sampler
    x = _inputs()
    with torch.no_grad():
        assert_close(loaded.model(x, attn="bidirectional").logits, reference_logits(state, x))
    sample_all(loaded)


def test_mdlm_time_conditioned_keeps_conditioning(tmp_path):
    from paradistill import loading
    from paradistill.sampling.base import Denoiser

    state = dit_state(2)
    src = save_safetensors(state, tmp_path / "tc", config=mdlm_hub_config(time_conditioning=True))
    loaded = loading.load(src)
    assert loaded.model.cfg.time_conditioning and loaded.model.cfg.time_input == "loglinear_sigma"
    x = _inputs(1)
    t = torch.tensor([0.05, 0.5, 0.97])
    sigma = -torch.log1p(-(1 - 1e-3) * t)  # MDLM's log-linear noise level, what its DiT is fed
    with torch.no_grad():
        ours = loaded.model(x, attn="bidirectional", sigma=t).logits
        assert_close(ours, reference_logits(state, x, sigma=sigma))
        # the conditioning matters: another time gives other logits
        other = loaded.model(x, attn="bidirectional", sigma=torch.full((3,), 0.2)).logits
        assert (other - ours).abs().max() > 1e-3
    assert Denoiser(loaded.model, MASK).time_conditioned
    sample_all(loaded)


@pytest.mark.parametrize("block_size", [4, LENGTH])  # a fine-tuned block model and the 1024-style pre-train
def test_bd3lm(tmp_path, block_size):
    from paradistill import loading
    from paradistill.diffusion.bd3lm import bd3_logits

    state = dit_state(3)
    src = save_safetensors(state, tmp_path / f"bd3-{block_size}", config=bd3lm_hub_config(block_size))
    loaded = loading.load(src)
    assert loaded.kind == "bd3lm" and loaded.method["block_size"] == block_size
    x0 = _inputs(2).clamp_max(VOCAB - 2)
    xt = _inputs(3)
    pos = torch.cat([torch.arange(LENGTH), torch.arange(LENGTH)])
    with torch.no_grad():
        ours = bd3_logits(loaded.model, xt, x0, block_size)
        ref = reference_logits(state, torch.cat([xt, x0], 1), mask=block_diff_mask(LENGTH, block_size),
                               positions=pos)[:, :LENGTH]
    assert_close(ours, ref)
    sample_all(loaded)


@pytest.mark.parametrize("prefix", ["backbone.", "backbone.backbone."])
def test_sdtt(tmp_path, prefix):
    from paradistill import loading

    state = dit_state(4)
    src = save_safetensors(state, tmp_path / "sdtt", prefix=prefix, config=sdtt_config())
    loaded = loading.load(src)
    assert loaded.kind == "mdlm" and loaded.method["source_format"] == "sdtt"
    x = _inputs(4)
    with torch.no_grad():
        assert_close(loaded.model(x, attn="bidirectional").logits, reference_logits(state, x))
    sample_all(loaded)


def _gumbel_ckpt(path, state, mode, algo, ema_state=None):
    """A Lightning checkpoint as Gumbel-distill writes it: backbone.*, the teacher's tensors, eps buffers, EMA."""
    sd = {f"backbone.{k}": v for k, v in state.items()}
    sd["teacher_model.transformer.wte.weight"] = torch.randn(VOCAB - 1, 8)
    if algo == "bd3lm_gumbel":
        sd["sampling_eps_min"], sd["sampling_eps_max"] = torch.tensor(1e-3), torch.tensor(0.999)
    algo_cfg = {"name": algo, "cross_attn": algo == "bd3lm_gumbel", "block_size": 4 if algo == "bd3lm_gumbel" else LENGTH}
    obj = {"state_dict": sd, "hyper_parameters": {"config": {
        "model": {"hidden_size": 32, "n_heads": 4, "n_blocks": BLOCKS, "cond_dim": 16, "length": LENGTH,
                  "gumbel_inject_mode": mode}, "algo": algo_cfg, "time_conditioning": False}}}
    if ema_state is not None:
        params = [k for k in state if k != "rotary_emb.inv_freq"]
        obj["ema"] = {"decay": 0.9999, "num_updates": 10, "shadow_params": [ema_state[k] for k in params]}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    from loading_fixtures import write_gpt2_style_tokenizer

    write_gpt2_style_tokenizer(path.parent)
    return path


@pytest.mark.parametrize("mode", ["replace", "add"])
@pytest.mark.parametrize("algo", ["mdlm_gumbel", "bd3lm_gumbel"])
def test_gumbel_student(tmp_path, mode, algo):
    from paradistill import loading
    from paradistill.diffusion.bd3lm import bd3_logits

    state = dit_state(5, gumbel=True)
    ema = {k: v + 0.05 * torch.randn_like(v) for k, v in state.items()}
    ckpt = _gumbel_ckpt(tmp_path / algo / f"{mode}.ckpt", state, mode, algo, ema_state=ema)
    for use_ema, weights in ((True, ema), (False, state)):
        loaded = loading.load(ckpt, use_ema=use_ema)
        assert loaded.kind == ("gd-bd3lm" if algo == "bd3lm_gumbel" else "gd-mdlm")
        assert loaded.model.cfg.extra_mode == mode and loaded.model.cfg.noise_vocab == -1
        x = _inputs(5)
        noise = -torch.log(-torch.log(torch.rand(3, LENGTH, VOCAB)))  # [B, L, V]: the MASK column is ignored
        where = x == MASK
        with torch.no_grad():
            ours = loaded.model(x, attn="bidirectional", noise=noise, extra_mask=where).logits
        ref = reference_logits(weights, x, noise=noise[..., : VOCAB - 1], inject=mode, mask_id=MASK)
        assert_close(ours, ref)
    if algo == "bd3lm_gumbel":
        assert loaded.method["block_size"] == 4
        x0 = _inputs(6).clamp_max(VOCAB - 2)
        with torch.no_grad():
            plain = bd3_logits(loaded.model, x0, x0, 4)
        ref = reference_logits(state, torch.cat([x0, x0], 1), mask=block_diff_mask(LENGTH, 4),
                               positions=torch.cat([torch.arange(LENGTH)] * 2))[:, :LENGTH]
        assert_close(plain, ref)
    sample_all(loaded, noise_temperature=0.85)


def test_conversion_is_cached_by_source_hash(tmp_path):
    from paradistill import loading

    state = dit_state(6)
    src = save_safetensors(state, tmp_path / "m", config=mdlm_hub_config())
    a = loading.load(src)
    b = loading.load(src)
    assert a.path == b.path and a.path.parent.name == "converted"
    mtime = (a.path / "model.safetensors").stat().st_mtime_ns
    loading.load(src)
    assert (a.path / "model.safetensors").stat().st_mtime_ns == mtime  # not converted again
    state["output_layer.linear.bias"] += 1.0
    save_safetensors(state, src, config=mdlm_hub_config())
    c = loading.load(src)
    assert c.path != a.path  # new source bytes, new conversion


def test_gumbel_checkpoint_without_config(tmp_path):
    """The released .ckpt files may carry no usable config: BD3-LM's eps buffers mark the block-4 student."""
    from loading_fixtures import write_gpt2_style_tokenizer
    from paradistill import loading

    state = dit_state(7, gumbel=True)
    for name, buffers in (("bd3lms-gumbel-owt.ckpt", True), ("mdlm-gumbel-owt.ckpt", False)):
        sd = {f"backbone.{k}": v for k, v in state.items()}
        if buffers:
            sd["sampling_eps_min"], sd["sampling_eps_max"] = torch.tensor(1e-3), torch.tensor(0.999)
        torch.save({"state_dict": sd}, tmp_path / name)
    write_gpt2_style_tokenizer(tmp_path)
    bd3 = loading.load(tmp_path / "bd3lms-gumbel-owt.ckpt", n_heads=4)
    assert bd3.kind == "gd-bd3lm" and bd3.method["block_size"] == 4 and bd3.model.cfg.extra_mode == "replace"
    assert loading.load(tmp_path / "mdlm-gumbel-owt.ckpt", n_heads=4).kind == "gd-mdlm"
    assert loading.load(tmp_path / "bd3lms-gumbel-owt.ckpt", n_heads=4, block_size=8).method["block_size"] == 8
