"""Block diffusion (BD3-LM): masks, loss identities (B = L is MDLM, B = 1 at t = 1 is AR), KV-cached block
sampling, prompts, variable length, bad block sizes, CLI. Tiny models; < 30 s on 2 cores."""

from __future__ import annotations

import json

import pytest
import torch

from paradistill.diffusion.bd3lm import (BD3Config, BD3Objective, bd3_logits, block_attention_mask,
                                         check_block_size)
from paradistill.diffusion.mdlm import subs_log_probs
from paradistill.diffusion.objectives import DiffusionConfig, MDLMObjective
from paradistill.errors import UserError
from paradistill.models.transformer import ModelConfig, Transformer
from paradistill.sampling.base import run_sampler
from paradistill.sampling.bd3lm import BD3Denoiser
from paradistill.sampling.blocks import BlockwiseSampler
from paradistill.sampling.samplers import AncestralSampler, ConfidenceSampler, FirstHittingSampler

PAD, BOS, EOS, MASK = 0, 1, 2, 3
V = 16


def make_model(seed: int = 0, std: float = 0.3, **kw) -> Transformer:
    """A random model with sharp attention (large weights), so that a wrong mask changes the outputs."""
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=V, dim=32, n_layers=2, n_heads=2, max_len=128, **kw)
    model = Transformer(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, std)
    return model


def random_x0(bsz: int, length: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(4, V, (bsz, length), generator=g)
    x[:, 0] = BOS
    return x


def dense_mask(length: int, block: int) -> torch.Tensor:
    """Slow reference of METHODS §2, one (query, key) pair at a time."""
    out = torch.zeros(2 * length, 2 * length, dtype=torch.bool)
    for i in range(2 * length):
        for j in range(2 * length):
            qi_xt, kj_xt = i < length, j < length
            bq, bk = (i % length) // block, (j % length) // block
            if qi_xt:
                out[i, j] = (kj_xt and bk == bq) or (not kj_xt and bk < bq)
            else:
                out[i, j] = (not kj_xt) and bk <= bq
    return out


def test_mask_equals_dense_reference():
    for length in (1, 2, 3, 4, 6, 8, 12, 16):
        for block in [b for b in range(1, length + 1) if length % b == 0]:
            assert torch.equal(block_attention_mask(length, block), dense_mask(length, block)), (length, block)


@pytest.mark.parametrize("bad", [0, -1, 3, 5])
def test_bad_block_sizes_are_clear_errors(bad):
    with pytest.raises(UserError, match=rf"block_size={bad}\b"):
        block_attention_mask(8, bad)
    with pytest.raises(UserError, match=rf"block_size={bad}\b"):
        BD3Denoiser(make_model(), MASK, block_size=bad, length=8)
    obj = BD3Objective(BD3Config(block_size=4), DiffusionConfig(), MASK, PAD, BOS)
    obj.block_size = bad
    with pytest.raises(UserError, match=rf"block_size={bad}\b"):
        obj.loss(make_model(), random_x0(2, 8), torch.Generator().manual_seed(0))
    if bad < 1:
        with pytest.raises(UserError, match=rf"block_size={bad}\b"):
            BD3Config(block_size=bad).validate()


def test_bad_config_through_recipe_and_api():
    from paradistill import api
    from paradistill.data.tokenizers import builtin_tokenizer

    tok = builtin_tokenizer()
    recipe = api.load_recipe("tiny", ["bd3lm.block_size=5"])
    with pytest.raises(UserError, match="block_size=5 does not divide data.seq_len=64"):
        api.build_objective("bd3lm", recipe, tok)
    with pytest.raises(UserError, match="block_size=0"):
        api.build_objective("bd3lm", api.load_recipe("tiny", ["bd3lm.block_size=0"]), tok)
    with pytest.raises(UserError, match="t_min"):
        api.build_objective("bd3lm", api.load_recipe("tiny", ["bd3lm.t_min=0.9", "bd3lm.t_max=0.2"]), tok)
    obj, method = api.build_objective("bd3lm", api.load_recipe("tiny", ["bd3lm.block_size=16"]), tok)
    assert obj.block_size == 16 and method["block_size"] == 16


def test_time_conditioned_backbone_is_refused():
    model = make_model(time_conditioning=True, cond_dim=16)
    obj = BD3Objective(BD3Config(block_size=4), DiffusionConfig(), MASK, PAD, BOS)
    with pytest.raises(UserError, match="time_conditioning=false"):
        obj.loss(model, random_x0(2, 8), torch.Generator().manual_seed(0))
    with pytest.raises(UserError, match="time_conditioning=false"):
        BD3Denoiser(model, MASK, block_size=4)


def test_block_size_L_loss_equals_mdlm():
    model, x0 = make_model(), random_x0(6, 16)
    x0[0, -3:] = PAD  # padding is neither masked nor scored, in both
    diff = DiffusionConfig()
    mdlm = MDLMObjective(diff, MASK, PAD, BOS)
    bd3 = BD3Objective(BD3Config(block_size=16), diff, MASK, PAD, BOS)
    for seed in range(3):
        a, _ = mdlm.loss(model, x0, torch.Generator().manual_seed(seed))
        b, _ = bd3.loss(model, x0, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
        sa, na = mdlm.eval_terms(model, x0, torch.Generator().manual_seed(seed))
        sb, nb = bd3.eval_terms(model, x0, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(sb, sa, rtol=1e-5, atol=1e-4)
        assert int(na) == int(nb)
    other, _ = BD3Objective(BD3Config(block_size=4), diff, MASK, PAD, BOS).loss(
        model, x0, torch.Generator().manual_seed(0))
    ref, _ = mdlm.loss(model, x0, torch.Generator().manual_seed(0))
    assert abs(other.item() - ref.item()) > 1e-3  # smaller blocks see clean context: a different loss


def test_block_size_1_at_t1_equals_prefix_reference():
    model, x0 = make_model(), random_x0(3, 10)
    length = x0.shape[1]
    bd3 = BD3Objective(BD3Config(block_size=1), DiffusionConfig(), MASK, PAD, BOS)
    xt = torch.full_like(x0, MASK)
    xt[:, 0] = BOS
    t = torch.ones(x0.shape, dtype=torch.float32)
    terms = bd3.terms_given(model, x0, xt, t)  # weight 1/t = 1 at t = 1
    fast = terms[:, 1:].sum(1)

    def reference(attn):
        total = torch.zeros(x0.shape[0])
        for i in range(1, length):
            inp = torch.cat([x0[:, :i], torch.full((x0.shape[0], 1), MASK)], 1)
            logits = model(inp, attn=attn).logits[:, -1:]
            logp = subs_log_probs(logits, inp[:, -1:], MASK)[:, 0]
            total -= logp.gather(1, x0[:, i:i + 1])[:, 0]
        return total

    with torch.no_grad():
        torch.testing.assert_close(fast, reference("causal"), rtol=1e-4, atol=1e-4)
        assert (fast - reference("bidirectional")).abs().max() > 1e-2  # the test can see a wrong mask


@pytest.mark.parametrize("block", [2, 4])
def test_training_pass_equals_block_denoiser(block):
    """The x_t half of the training pass, block by block, equals what the sampler's denoiser computes."""
    model, x0 = make_model(), random_x0(2, 12)
    g = torch.Generator().manual_seed(3)
    xt = torch.where(torch.rand(x0.shape, generator=g) < 0.5, torch.full_like(x0, MASK), x0)
    with torch.no_grad():
        train = subs_log_probs(bd3_logits(model, xt, x0, block), xt, MASK)
    for use_cache in (True, False):
        den = BD3Denoiser(model, MASK, block_size=block, use_cache=use_cache, batch_size=2, length=12)
        for start in range(0, 12, block):
            ctx = x0.clone()
            view = den.block_view(ctx, start, start + block)
            got = view(xt[:, start:start + block], torch.ones(2))
            torch.testing.assert_close(got, train[:, start:start + block], rtol=1e-4, atol=1e-4)
            den.commit(x0[:, start:start + block], start, start + block)


def _sample(model, sampler, use_cache, length=16, train_block=4, sample_block=4, prompt_len=6, seed=0, bsz=3):
    x = torch.full((bsz, length), MASK)
    x[:, :prompt_len] = random_x0(bsz, prompt_len, seed=7)
    fixed = torch.zeros(bsz, length, dtype=torch.bool)
    fixed[:, :prompt_len] = True
    den = BD3Denoiser(model, MASK, block_size=train_block, use_cache=use_cache, batch_size=bsz, length=length)
    res = run_sampler(BlockwiseSampler(sampler, sample_block), den, x, fixed, torch.Generator().manual_seed(seed), 4)
    return res, den, x


@pytest.mark.parametrize("sampler", [AncestralSampler(), FirstHittingSampler(), ConfidenceSampler("confidence")],
                         ids=lambda s: s.name)
def test_cached_sampling_equals_uncached_and_costs_less(sampler):
    model = make_model(std=0.1)
    cached, den_c, x = _sample(model, sampler, True)
    plain, den_u, _ = _sample(model, sampler, False)
    assert torch.equal(cached.tokens, plain.tokens)
    assert cached.nfe == plain.nfe
    assert torch.equal(cached.tokens[:, :6], x[:, :6])  # the prompt (ending mid-block) is never changed
    assert not (cached.tokens == MASK).any()
    assert den_c.query_tokens < den_u.query_tokens and den_c.flops < den_u.flops
    # finished blocks are cached by the next block's first denoising pass: no extra cache-writing passes
    assert den_c.forward_calls == cached.nfe and den_u.forward_calls == plain.nfe


@pytest.mark.parametrize("sample_block", [2, 8])
def test_cache_with_sampler_blocks_unlike_trained(sample_block):
    """Sampler blocks that cut trained blocks (rolled-back cache) still match recomputation."""
    model = make_model(std=0.1)
    a, _, _ = _sample(model, AncestralSampler(), True, sample_block=sample_block, prompt_len=3)
    b, _, _ = _sample(model, AncestralSampler(), False, sample_block=sample_block, prompt_len=3)
    assert torch.equal(a.tokens, b.tokens)


def test_stop_at_eos_and_length_cap():
    model = make_model(std=0.1, tie_weights=False)
    with torch.no_grad():  # a model that always says EOS
        model.norm.weight.zero_()
        model.norm.bias.normal_()
        model.head.weight.zero_()
        model.head.weight[EOS] = 50 * model.norm.bias
    bsz, length = 2, 16
    x = torch.full((bsz, length), MASK)
    x[:, 0] = BOS
    fixed = torch.zeros_like(x, dtype=torch.bool)
    fixed[:, 0] = True
    den = BD3Denoiser(model, MASK, block_size=4, batch_size=bsz, length=length)
    stop = BlockwiseSampler(AncestralSampler(), 4, eos_id=EOS, pad_id=PAD)
    res = run_sampler(stop, den, x, fixed, torch.Generator().manual_seed(0), 4)
    assert (res.tokens[:, 1] == EOS).all() and (res.tokens[:, 2:] == PAD).all()
    full = run_sampler(BlockwiseSampler(AncestralSampler(), 4), BD3Denoiser(model, MASK, 4), x, fixed,
                       torch.Generator().manual_seed(0), 4)
    assert res.nfe < full.nfe and (full.tokens[:, 1:] == EOS).all()
    model2 = make_model(std=0.1)
    den2 = BD3Denoiser(model2, MASK, block_size=4, batch_size=bsz, length=length)
    capped = run_sampler(BlockwiseSampler(AncestralSampler(), 4, pad_id=PAD, max_length=6), den2, x, fixed,
                         torch.Generator().manual_seed(0), 4)
    assert (capped.tokens[:, 6:] == PAD).all() and not (capped.tokens[:, :6] == MASK).any()
    assert den2.forward_calls <= 2 * 4 + 1  # two blocks of at most 4 steps, one commit
    with pytest.raises(UserError, match="max_length=0"):
        BlockwiseSampler(AncestralSampler(), 4, pad_id=PAD, max_length=0)


@pytest.mark.slow  # ~15-20 s on the shared CPU, mostly the Lightning import and three tiny training runs
def test_train_sample_and_init_from_mdlm(tmp_path, monkeypatch):
    """End to end on the built-in corpus: MDLM -> BD3-LM fine-tuning (--init), `paradistill sample`."""
    from paradistill import api
    from paradistill.cli import main

    monkeypatch.setenv("PARADISTILL_CACHE", str(tmp_path / "cache"))
    small = ["data.seq_len=16", "data.num_tokens=20000", "model.dim=32", "model.n_layers=1", "model.n_heads=2",
             "train.max_steps=2", "train.batch_size=4", "train.eval_every=2", "train.eval_batches=1",
             "train.warmup_steps=1", "train.checkpoint_every=0"]
    mdlm = api.train_model("mdlm", api.load_recipe("tiny", small), tmp_path / "mdlm", progress=False)
    assert main(["--threads", "1", "train", "bd3lm", "--block-size", "4", "--out", str(tmp_path / "bd3"),
                 "--init", str(mdlm.checkpoint), *small]) == 0
    loaded = api.load(tmp_path / "bd3")
    assert loaded.kind == "bd3lm" and loaded.method["block_size"] == 4 and loaded.method["init"]
    out = tmp_path / "s.jsonl"
    assert main(["--threads", "1", "sample", str(tmp_path / "bd3"), "--num", "2", "--steps", "2",
                 "--prompt", "the", "--stop-at-eos", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    prompt_ids = [loaded.tokenizer.bos_id] + loaded.tokenizer.encode("the")
    assert len(rows) == 2 and all(r["tokens"][:len(prompt_ids)] == prompt_ids for r in rows)
    a = api.generate(loaded, 2, steps=2, seed=1, progress=False)
    b = api.generate(loaded, 2, steps=2, seed=1, progress=False, kv_cache=False)
    assert torch.equal(a.tokens, b.tokens)
    with pytest.raises(UserError, match="--compile applies to autoregressive"):
        api.generate(loaded, 1, steps=2, progress=False, compile=True)
    capped = api.generate(loaded, 2, steps=2, seed=1, progress=False, max_length=6)
    assert (capped.tokens[:, 6:] == loaded.tokenizer.pad_id).all()
    with pytest.raises(UserError, match=r"block_size=4\b.*length 18"):
        api.generate(loaded, 1, length=18, steps=2, progress=False)
    assert main(["train", "bd3lm", "--block-size", "3", "--out", str(tmp_path / "bad"), *small]) == 2


def test_check_block_size_names_value():
    with pytest.raises(UserError, match=r"block_size=7 does not divide the sequence length 64"):
        check_block_size(7, 64)
