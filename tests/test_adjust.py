"""ADJUST joint sampler (distill/adjust.py, distill/adjust_*.py): exactness of K = 1, the sampler's logits
driving the picks, unrolls that never touch unmasked tokens, a frozen base, trajectories, errors, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import make_model, reference_sequential
from paradistill.diffusion.mdlm import NEG_INF
from paradistill.distill.adjust import (AdjustConfig, AdjustObjective, SamplerConfig, SamplerLayer, forward_kl,
                                        unroll_windows, unrolled_state)
from paradistill.distill.adjust_adapters import ParadistillAdapter, block_causal_mask, check_adapter
from paradistill.distill.adjust_decode import joint_decode
from paradistill.distill.adjust_store import generate_trajectories, load_trajectories
from paradistill.generation import sample_adjust as generate_adjust
from paradistill.methods.adjust import train_adjust
from paradistill.errors import UserError
from paradistill.sampling.base import SamplingOptions
from paradistill.checkpoint import save_checkpoint
from paradistill.loader import load_checkpoint
from paradistill.train.config import TrainConfig

L = 12


def structured_model(vocab, seed=0, **changes):
    """A random base whose conditionals really depend on the context (large embeddings)."""
    model = make_model(vocab, seed=seed, **changes)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and "embed" not in name:
                p.mul_(20.0)
        model.embed.weight.mul_(10.0)
    return model


@pytest.fixture
def base(tmp_path, tiny_tokenizer):
    model = structured_model(tiny_tokenizer.vocab_size)
    save_checkpoint(tmp_path / "base", model, "mdlm", tiny_tokenizer, {"seq_len": L, "keep_bos": True})
    return load_checkpoint(tmp_path / "base")


def template(tok, batch, prompt=()):
    x = torch.full((batch, L), tok.mask_id)
    x[:, 0] = tok.bos_id
    fixed = torch.zeros(batch, L, dtype=torch.bool)
    fixed[:, 0] = True
    for i, t in enumerate(prompt):
        x[:, 1 + i], fixed[:, 1 + i] = t, True
    return x, fixed


def random_sampler(adapter, seed=1):
    torch.manual_seed(seed)
    s = SamplerLayer(SamplerConfig(adapter.embed_size, adapter.hidden_size, adapter.hidden_size, 2))
    with torch.no_grad():
        s.out_norm.weight.normal_(0, 3.0)  # a non-trivial, untrained update
    return s.eval()


def save_sampler(path, base, sampler):
    adapter = ParadistillAdapter.from_loaded(base)
    method = {"base": str(base.path.resolve()), "base_kind": "mdlm", "base_fingerprint": adapter.fingerprint(),
              "seq_len": L, "keep_bos": True}
    save_checkpoint(path, sampler, "adjust", base.tokenizer, method)
    return path


def test_k1_is_sequential_sampling_exactly(tmp_path, base):
    tok = base.tokenizer
    x, fixed = template(tok, 6, prompt=(5,))
    ref = reference_sequential(base.model, tok.mask_id, x, fixed, torch.Generator().manual_seed(3))
    ckpt = save_sampler(tmp_path / "adj", base, random_sampler(ParadistillAdapter.from_loaded(base)))
    for mode in ("adjust", "marginal"):
        r = generate_adjust(base, x, fixed, torch.Generator().manual_seed(3), SamplingOptions(), tokens_per_pass=1,
                            mode=mode, adjust_checkpoint=ckpt)
        assert torch.equal(r.tokens, ref)
        assert r.nfe == L - 2 and r.extra["sampler_passes"] == 0
    # with K > 1 the same seed gives other samples and fewer full passes
    r4 = generate_adjust(base, x, fixed, torch.Generator().manual_seed(3), SamplingOptions(), tokens_per_pass=4,
                         mode="adjust", adjust_checkpoint=ckpt)
    assert r4.nfe == math.ceil((L - 2) / 4) and r4.extra["sampler_passes"] == (L - 2) - r4.nfe


def test_untrained_sampler_is_the_marginal_baseline(base):
    adapter = ParadistillAdapter.from_loaded(base)
    torch.manual_seed(0)
    fresh = SamplerLayer(SamplerConfig(adapter.embed_size, adapter.hidden_size, 16, 2)).eval()  # zero output gain
    x, fixed = template(base.tokenizer, 5)
    a = joint_decode(adapter, x, fixed, torch.Generator().manual_seed(1), SamplingOptions(), 4, sampler=fresh)
    m = joint_decode(adapter, x, fixed, torch.Generator().manual_seed(1), SamplingOptions(), 4, sampler=None)
    assert torch.equal(a[0], m[0]) and torch.equal(a[1], m[1]) and a[2] == m[2] == 3
    assert a[3] == (L - 1) - 3 and m[3] == 0


def test_picks_follow_the_sampler_logits(base):
    """Second pick of a pass = lowest entropy under head(sampler(E(x1), h0)), sampled there."""
    adapter = ParadistillAdapter.from_loaded(base)
    sampler = random_sampler(adapter)
    x, fixed = template(base.tokenizer, 4)
    states = []
    joint_decode(adapter, x, fixed, torch.Generator().manual_seed(2), SamplingOptions(), 2, sampler=sampler,
                 trace=states.append)
    x0 = x.clone()
    with torch.no_grad():
        h0, logits0 = adapter.hidden_and_logits(x0)
        h1 = sampler(adapter.embed_tokens(states[0]), h0)
        marg_pos, adj_pos = [], []
        for lg, prev in ((logits0, x0), (adapter.head(h1), states[0])):
            lg = lg.clone()
            lg[..., base.tokenizer.mask_id] = NEG_INF
            lp = torch.log_softmax(lg, -1)
            ent = -torch.where(lp.exp() > 0, lp.exp() * lp, torch.zeros_like(lp)).sum(-1)
            ent[prev != base.tokenizer.mask_id] = math.inf
            (marg_pos if prev is x0 else adj_pos).append(ent.argmin(1))
    rows = torch.arange(4)
    for before, after, pos in ((x0, states[0], marg_pos[0]), (states[0], states[1], adj_pos[0])):
        changed = before != after
        assert changed.sum(1).eq(1).all() and changed[rows, pos].all()


def test_generation_never_changes_unmasked_tokens(base):
    adapter = ParadistillAdapter.from_loaded(base)
    x, fixed = template(base.tokenizer, 4, prompt=(6, 7))
    states = []
    out = joint_decode(adapter, x, fixed, torch.Generator().manual_seed(0), SamplingOptions(), 3,
                       sampler=random_sampler(adapter), trace=states.append)[0]
    prev = x
    for s in [*states, out]:
        was = prev != base.tokenizer.mask_id
        assert torch.equal(s[was], prev[was]) and ((s != prev).sum(1) <= 1).all()
        prev = s
    assert torch.equal(out[:, :3], x[:, :3]) and not (out == base.tokenizer.mask_id).any()


def test_adaptive_k_stops_on_high_entropy(base):
    adapter = ParadistillAdapter.from_loaded(base)
    x, fixed = template(base.tokenizer, 3)
    opts = SamplingOptions()
    seq = joint_decode(adapter, x, fixed, torch.Generator().manual_seed(0), opts, 1)
    zero = joint_decode(adapter, x, fixed, torch.Generator().manual_seed(0), opts, 8, threshold=0.0)
    assert torch.equal(seq[0], zero[0]) and zero[2] == L - 1  # threshold 0: one token per pass
    free = joint_decode(adapter, x, fixed, torch.Generator().manual_seed(0), opts, 8, threshold=1e9)
    assert free[2] == math.ceil((L - 1) / 8)


def test_unrolls_never_change_unmasked_tokens():
    gen = torch.Generator().manual_seed(0)
    batch, n_gen = 64, L - 2
    tokens = torch.randint(4, 12, (batch, L))
    order = torch.full((batch, L), -1)
    for b in range(batch):
        order[b, :n_gen] = torch.randperm(L - 2, generator=gen) + 2  # positions 0, 1 fixed (BOS + prompt)
    _, _, shared = unroll_windows(order, gen, max_unroll=5, p=0.3, shared=True)
    assert len(set(shared.tolist()) - {n_gen - s for s in range(n_gen)}) <= 1  # one draw (capped near the end)
    rank, s, k = unroll_windows(order, gen, max_unroll=5, p=0.3)
    assert (k >= 1).all() and (k <= 5).all() and (s + k <= n_gen).all() and (s >= 0).all()
    assert (k == 1).float().mean() > 0.15  # geometric: k = 1 most likely
    prev = unrolled_state(tokens, rank, s, 3)
    assert torch.equal(prev[:, :2], tokens[:, :2])
    for j in range(1, 6):
        x = unrolled_state(tokens, rank, s + torch.clamp(k, max=j), 3)
        was = prev != 3
        assert torch.equal(x[was], prev[was])  # nothing unmasked ever changes
        new = (x != prev)
        assert torch.equal(new.sum(1), (j <= k).long())  # exactly the j-th recorded token, if still unrolling
        rows = torch.nonzero(j <= k).squeeze(1)
        assert torch.equal(new[rows].float().argmax(1), order[rows, s[rows] + j - 1])
        assert torch.equal(x[new], tokens[new])
        prev = x


def test_forward_kl_and_identity_loss(base):
    p = torch.log_softmax(torch.randn(2, 3, 7, dtype=torch.float64), -1)
    q = torch.log_softmax(torch.randn(2, 3, 7, dtype=torch.float64), -1)
    ref = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=p),
                                            torch.distributions.Categorical(logits=q))
    assert torch.allclose(forward_kl(p, q), ref)
    adapter = ParadistillAdapter.from_loaded(base)
    x, fixed = template(base.tokenizer, 16)
    toks, order, _, _ = joint_decode(adapter, x, fixed, torch.Generator().manual_seed(0), SamplingOptions(), 1)
    batch = torch.cat([toks, order, torch.zeros(16, 1, dtype=torch.long)], 1)
    obj = AdjustObjective(adapter, AdjustConfig(max_unroll=4, shared_k=False))
    fresh = SamplerLayer(SamplerConfig(adapter.embed_size, adapter.hidden_size, 32, 2))
    loss, metrics = obj.loss(fresh, batch, torch.Generator().manual_seed(0))
    assert metrics["kl_marginal"] > 1e-3
    assert loss.item() == pytest.approx(metrics["kl_marginal"], rel=1e-4)  # identity sampler = marginal


def test_training_freezes_base_and_learns(tmp_path, base):
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    cfg = AdjustConfig(trajectories=96, traj_batch_size=48, shard_size=48, steps=40, batch_size=16, lr=3e-3,
                       warmup_steps=2, ema=0.0, max_unroll=3, eval_batches=2, val_fraction=0.2)
    x, fixed = template(base.tokenizer, 1)
    tcfg = TrainConfig(eval_every=1000, checkpoint_every=1000, log_every=1)
    result = train_adjust(base, x, fixed, cfg, tcfg, tmp_path / "run", progress=False)
    for k, v in base.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not any(p.requires_grad for p in base.model.parameters())
    logs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    closed = [r["kl_closed"] for r in logs if r.get("kind") == "train"]
    assert np.mean(closed[-10:]) > np.mean(closed[:5]) + 0.05  # the sampler closes part of the marginal's KL
    loaded = load_checkpoint(tmp_path / "run")
    assert loaded.kind == "adjust" and loaded.method["base_fingerprint"] == ParadistillAdapter.from_loaded(base).fingerprint()
    assert loaded.method["base"] == str(base.path.resolve()) and result.steps == 40
    with pytest.raises(UserError, match="already holds"):
        train_adjust(base, x, fixed, cfg, tcfg, tmp_path / "run", progress=False)


def test_trajectories_resume_and_fingerprint(tmp_path, base, tiny_tokenizer):
    adapter = ParadistillAdapter.from_loaded(base)
    x, fixed = template(base.tokenizer, 1)
    folder = generate_trajectories(adapter, tmp_path / "t", x, fixed, 20, batch_size=8, shard_size=8, progress=False)
    full = load_trajectories(folder, adapter.fingerprint())
    assert full.shape == (20, 2 * L + 1) and np.array_equal(full[:, -1], np.arange(20))
    (folder / "shard_00001.npz").unlink()
    with pytest.raises(UserError, match="shard 1"):
        load_trajectories(folder, adapter.fingerprint())
    generate_trajectories(adapter, folder, x, fixed, 20, batch_size=8, shard_size=8, progress=False)
    assert np.array_equal(load_trajectories(folder, adapter.fingerprint()), full)
    # each recorded pick is the base's lowest-entropy masked position at that state
    row = torch.from_numpy(full[3]).long()
    rank, s, _ = unroll_windows(row[None, L:2 * L], torch.Generator().manual_seed(0), 1, 1.0)
    for j in range(L - 1):
        state = unrolled_state(row[None, :L], rank, torch.tensor([j]), adapter.mask_id)
        pos, _ = __import__("paradistill.distill.adjust_decode", fromlist=["x"]).pick_lowest_entropy(
            torch.log_softmax(adapter.hidden_and_logits(state)[1].index_fill(-1, torch.tensor([3]), NEG_INF), -1),
            state == adapter.mask_id)
        assert int(pos) == int(row[L + j])
    other = ParadistillAdapter(structured_model(tiny_tokenizer.vocab_size, seed=5), tiny_tokenizer.mask_id)
    with pytest.raises(UserError, match="different base"):
        load_trajectories(folder, other.fingerprint())
    with pytest.raises(UserError, match="different base"):
        generate_trajectories(other, folder, x, fixed, 20, batch_size=8, shard_size=8, progress=False)


def test_hidden_cache_matches_fresh_passes(tmp_path, base):
    """Cached hidden states are the full passes at the recorded states, so the cached objective equals the fresh one."""
    from paradistill.distill.adjust import init_from_base
    from paradistill.distill.adjust_store import load_hidden_store

    adapter = ParadistillAdapter.from_loaded(base)
    x, fixed = template(base.tokenizer, 1)
    folder = generate_trajectories(adapter, tmp_path / "t", x, fixed, 12, batch_size=6, shard_size=8,
                                   progress=False, cache_hidden=True)
    rows = torch.from_numpy(load_trajectories(folder, adapter.fingerprint())).long()
    store = load_hidden_store(folder, adapter.fingerprint())
    tokens, order = rows[:, :L], rows[:, L:2 * L]
    rank, _, _ = unroll_windows(order, torch.Generator(), 1, 1.0)
    for j in (0, 4, L - 2):
        state = unrolled_state(tokens, rank, torch.full((12,), j), adapter.mask_id)
        fresh = adapter.hidden_and_logits(state)[0]
        cached = store.get(torch.arange(12), torch.full((12,), j))
        assert torch.allclose(cached, fresh, atol=2e-2, rtol=2e-3)
    sampler = SamplerLayer(SamplerConfig(adapter.embed_size, adapter.hidden_size, adapter.hidden_size, 2,
                                         init_gain=0.5))
    assert init_from_base(sampler, adapter)
    cfg = AdjustConfig(max_unroll=4)
    a = AdjustObjective(adapter, cfg).loss(sampler, rows, torch.Generator().manual_seed(1))
    b = AdjustObjective(adapter, cfg, store).loss(sampler, rows, torch.Generator().manual_seed(1))
    assert a[1]["kl_marginal"] > 1e-3
    assert a[0].item() == pytest.approx(b[0].item(), rel=2e-2)
    assert a[1]["kl_marginal"] == pytest.approx(b[1]["kl_marginal"], rel=2e-2)


def test_init_from_base_with_a_smaller_mlp(base):
    """A cheaper sampler (MLP ratio 2 on a ratio-4 base) starts from the base's first block: attention and norms
    copied, the MLP's strongest hidden units kept (rows of w_in with their bias, the matching columns of w_out)."""
    from paradistill.distill.adjust import init_from_base

    adapter = ParadistillAdapter.from_loaded(base)
    sampler = SamplerLayer(SamplerConfig(adapter.embed_size, adapter.hidden_size, adapter.hidden_size, 2,
                                         mlp_ratio=2))
    assert init_from_base(sampler, adapter)
    ref, got = base.model.blocks[0].state_dict(), sampler.block.state_dict()
    for k in ("attn.qkv.weight", "attn.proj.weight", "norm1.weight", "norm2.bias", "mlp.2.bias"):
        assert torch.equal(got[k], ref[k])
    w_in, w_out = ref["mlp.0.weight"], ref["mlp.2.weight"]
    assert got["mlp.0.weight"].shape[0] == w_in.shape[0] // 2
    rows = [int((w_in == r).all(1).nonzero()[0]) for r in got["mlp.0.weight"]]
    assert rows == sorted(rows) and len(set(rows)) == len(rows)
    assert torch.equal(got["mlp.2.weight"], w_out[:, rows]) and torch.equal(got["mlp.0.bias"], ref["mlp.0.bias"][rows])
    strength = w_in.norm(dim=1) * w_out.norm(dim=0)
    assert strength[rows].min() >= strength[[i for i in range(len(strength)) if i not in rows]].max()


def test_hidden_cache_without_fixed_positions(tmp_path, base):
    """Every position generated (text packed without BOS): windows reach the fully revealed state L, which has no
    recorded full pass; the cached objective still equals the fresh one (the tinyshakespeare quick-start)."""
    adapter = ParadistillAdapter.from_loaded(base)
    x = torch.full((1, L), base.tokenizer.mask_id)
    fixed = torch.zeros(1, L, dtype=torch.bool)
    folder = generate_trajectories(adapter, tmp_path / "t", x, fixed, 8, batch_size=8, shard_size=8,
                                   progress=False, cache_hidden=True)
    rows = torch.from_numpy(load_trajectories(folder, adapter.fingerprint())).long()
    assert (rows[:, L:2 * L] >= 0).all()  # all L positions were picked
    from paradistill.distill.adjust_store import load_hidden_store

    store = load_hidden_store(folder, adapter.fingerprint())
    sampler = random_sampler(adapter)
    cfg = AdjustConfig(max_unroll=L)
    for seed in range(4):
        a = AdjustObjective(adapter, cfg).loss(sampler, rows, torch.Generator().manual_seed(seed))
        b = AdjustObjective(adapter, cfg, store).loss(sampler, rows, torch.Generator().manual_seed(seed))
        assert a[0].item() == pytest.approx(b[0].item(), rel=2e-2, abs=1e-6)


def test_bad_inputs(tmp_path, base, tiny_tokenizer):
    x, fixed = template(base.tokenizer, 2)
    with pytest.raises(UserError, match="tokens-per-pass 0"):
        generate_adjust(base, x, fixed, torch.Generator(), SamplingOptions(), tokens_per_pass=0, mode="marginal")
    with pytest.raises(UserError, match="--adjust CKPT"):
        generate_adjust(base, x, fixed, torch.Generator(), SamplingOptions(), tokens_per_pass=2, mode="adjust")
    ar = make_model(tiny_tokenizer.vocab_size)
    save_checkpoint(tmp_path / "ar", ar, "ar", tiny_tokenizer, {"seq_len": L})
    with pytest.raises(UserError, match="masked diffusion base"):
        ParadistillAdapter.from_loaded(load_checkpoint(tmp_path / "ar"))
    headless = make_model(tiny_tokenizer.vocab_size)
    headless.head = None
    with pytest.raises(UserError, match="output head"):
        ParadistillAdapter(headless, tiny_tokenizer.mask_id)
    from paradistill.models.transformer import ModelOutput

    odd = make_model(tiny_tokenizer.vocab_size)
    forward = odd.forward
    odd.forward = lambda *a, **k: ModelOutput(forward(*a, **k).logits * 2.0, forward(*a, **k).hidden)
    with pytest.raises(UserError, match="does not give the model's logits"):
        check_adapter(ParadistillAdapter(odd, tiny_tokenizer.mask_id), "test model")
    odd.forward = lambda *a, **k: ModelOutput(forward(*a, **k).logits, None)
    with pytest.raises(UserError, match="hidden states"):
        check_adapter(ParadistillAdapter(odd, tiny_tokenizer.mask_id), "test model")
    # a sampler trained on another base
    other = structured_model(tiny_tokenizer.vocab_size, seed=9)
    save_checkpoint(tmp_path / "other", other, "mdlm", tiny_tokenizer, {"seq_len": L, "keep_bos": True})
    other_loaded = load_checkpoint(tmp_path / "other")
    ckpt = save_sampler(tmp_path / "adj_other", other_loaded,
                        random_sampler(ParadistillAdapter.from_loaded(other_loaded)))
    with pytest.raises(UserError, match="another base"):
        generate_adjust(base, x, fixed, torch.Generator(), SamplingOptions(), tokens_per_pass=2, adjust_checkpoint=ckpt)


def test_block_base_decodes_block_by_block(tmp_path, tiny_tokenizer):
    model = structured_model(tiny_tokenizer.vocab_size, seed=3)
    save_checkpoint(tmp_path / "bd3", model, "bd3lm", tiny_tokenizer, {"seq_len": L, "keep_bos": True, "block_size": 4})
    loaded = load_checkpoint(tmp_path / "bd3")
    adapter = ParadistillAdapter.from_loaded(loaded)
    mask = block_causal_mask(8, 4)
    assert mask[5, 3] and mask[3, 2] and not mask[3, 4] and mask[4, 7]
    x, fixed = template(tiny_tokenizer, 3)
    states = []
    out, order, nfe, passes = joint_decode(adapter, x, fixed, torch.Generator().manual_seed(0), SamplingOptions(), 2,
                                           sampler=random_sampler(adapter), trace=states.append)
    # blocks finish in order: position p is revealed only after every position of earlier blocks
    for b in range(3):
        blocks = order[b][order[b] >= 0] // 4
        assert torch.equal(blocks, blocks.sort().values)
    assert nfe == 2 + 2 + 2 and passes == (L - 1) - nfe
    # the block's first full pass sees only the clean prefix: a later block's content does not matter
    with torch.no_grad():
        a = adapter.hidden_and_logits(out[:1, :8])[1]
        changed = out[:1].clone()
        changed[0, 8:] = 5
        b = adapter.hidden_and_logits(changed[:, :8])[1]
    assert torch.allclose(a, b)


def test_cli_distill_and_sample(tmp_path, base, capsys):
    from paradistill.cli import build_parser, main

    helptext = build_parser().parse_args(["distill", "adjust", "--base", "x"])  # parses
    assert helptext.base == "x"
    with pytest.raises(SystemExit):
        main(["distill", "adjust", "--help"])
    text = capsys.readouterr().out
    for flag in ("--base", "--trajectories", "--max-unroll", "--recipe", "--out", "--resume", "--prompts"):
        assert flag in text
    out = tmp_path / "run"
    rc = main(["distill", "adjust", "--base", str(base.path), "--out", str(out), "--trajectories", "24",
               "--steps", "2", "adjust.batch_size=8", "adjust.traj_batch_size=12", "adjust.shard_size=12",
               "adjust.ema=0", "--no-progress"])
    assert rc == 0
    samples = tmp_path / "s.jsonl"
    assert main(["sample", str(out), "--sampler", "adjust", "--tokens-per-pass", "4", "--num", "3",
                 "--out", str(samples)]) == 0
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(rows) == 3 and rows[0]["nfe"] == math.ceil((L - 1) / 4)
    assert rows[0]["batch_extra"][0]["sampler_passes"] == (L - 1) - rows[0]["nfe"]
    assert main(["sample", str(base.path), "--sampler", "adjust", "--adjust", str(out), "--num", "2",
                 "--out", str(samples), "--overwrite"]) == 0
    assert main(["sample", str(base.path), "--sampler", "adjust", "--tokens-per-pass", "0", "--adjust-mode",
                 "marginal", "--num", "2", "--out", str(samples), "--overwrite"]) == 2
    assert "tokens-per-pass 0" in capsys.readouterr().err


@pytest.mark.slow
def test_hf_adapter_with_a_transformers_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    from paradistill.distill.adjust_adapters import HFDiffusionAdapter

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=20, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    adapter = HFDiffusionAdapter(LlamaForCausalLM(cfg), mask_id=3, shift=True, name="tiny-llama")
    x, fixed = torch.full((2, 10), 3), torch.zeros(2, 10, dtype=torch.bool)
    x[:, 0], fixed[:, 0] = 1, True
    sampler = random_sampler(adapter)
    one = joint_decode(adapter, x, fixed, torch.Generator().manual_seed(0), SamplingOptions(), 1, sampler=sampler)
    marg = joint_decode(adapter, x, fixed, torch.Generator().manual_seed(0), SamplingOptions(), 1)
    assert torch.equal(one[0], marg[0]) and not (one[0] == 3).any()
    four = joint_decode(adapter, x, fixed, torch.Generator().manual_seed(0), SamplingOptions(), 4, sampler=sampler)
    assert four[2] == 3 and four[3] == 9 - 3
    with pytest.raises(UserError, match="does not give the model's logits"):
        HFDiffusionAdapter(LlamaForCausalLM(cfg), mask_id=3, head=torch.nn.Linear(32, 20), name="wrong-head")
