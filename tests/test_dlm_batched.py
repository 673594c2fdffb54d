"""Different prompts in ONE batch (sampling/padding.py, generation.generate(prompts=...), `sample --prompts`):
left-padded rows give the logits of their prompt alone, pads neither attend nor are attended, and greedy batched
generation equals per-prompt generation token for token (LLaDA / Dream replicas in their release layout, and the
paradistill MDLM backbone)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_model
from test_dlm import official_replica, tiny_chat_tokenizer

from paradistill.checkpoint import save_checkpoint
from paradistill.generation import generate
from paradistill.loader import load_checkpoint
from paradistill.sampling.padding import (
    PaddedDenoiser,
    left_pad,
    pad_attention,
    pad_positions,
)

GREEDY = 1e-6  # temperature: the releases' temperature 0 (argmax), deterministic


def replica(arch, tmp_path):
    path, _, _ = official_replica(arch, tmp_path)
    tiny_chat_tokenizer(path)
    return load_checkpoint(path, dtype="fp32")


def mdlm(tmp_path, tiny_tokenizer):
    save_checkpoint(tmp_path / "mdlm", make_model(tiny_tokenizer.vocab_size, seed=3), "mdlm", tiny_tokenizer,
                    {"seq_len": 24, "keep_bos": True})
    return load_checkpoint(tmp_path / "mdlm")


def rows_of(loaded, lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = loaded.tokenizer.mask_id
    rows = []
    for n in lengths:
        r = torch.randint(4, 9, (n,), generator=g)
        r[n // 2:] = mask  # a prompt followed by masked positions to generate
        rows.append(r)
    return rows


@pytest.mark.parametrize("which", ["llada", "dream", "mdlm"])
def test_left_padded_row_has_the_logits_of_its_prompt_alone(tmp_path, tiny_tokenizer, which):
    loaded = mdlm(tmp_path, tiny_tokenizer) if which == "mdlm" else replica(which, tmp_path)
    model, mask = loaded.model, loaded.tokenizer.mask_id
    rows = rows_of(loaded, [11, 5, 8])
    x, fixed, pad = left_pad(rows, [r != mask for r in rows], loaded.tokenizer.pad_id)
    assert x.shape == (3, 11) and pad.sum(1).tolist() == [0, 6, 3] and bool(fixed[pad].all())
    den = PaddedDenoiser(model, mask, pad)
    with torch.no_grad():
        batched = model(x, **den.model_inputs(x)).logits
        for i, r in enumerate(rows):
            alone = model(r[None]).logits[0]
            p = int(pad[i].sum())
            # Dream's realignment: the first real position reads the output before it (a pad's, or position 0's
            # own when alone); it is the prompt's first token, never sampled. Every other position must agree.
            first = p + 1 if which == "dream" else p
            scale = alone.abs().max().item()
            assert (batched[i, first:] - alone[first - p:]).abs().max().item() <= 1e-5 * scale
        # the denoiser's masked-only path agrees with its full path on padded rows
        where = x == mask
        full = den(x, torch.ones(3))
        assert torch.allclose(den.masked_log_probs(x, torch.ones(3), where), full[where], atol=1e-5)


@pytest.mark.parametrize("which", ["llada", "dream", "mdlm"])
def test_pads_never_attend_and_are_never_attended(tmp_path, tiny_tokenizer, which):
    loaded = mdlm(tmp_path, tiny_tokenizer) if which == "mdlm" else replica(which, tmp_path)
    model, mask = loaded.model, loaded.tokenizer.mask_id
    rows = rows_of(loaded, [9, 4])
    x, _, pad = left_pad(rows, [r != mask for r in rows], loaded.tokenizer.pad_id)
    attn = pad_attention(pad)
    assert attn.shape == (2, 1, 9, 9)
    for b in range(2):
        for i in range(9):
            for j in range(9):
                assert bool(attn[b, 0, i, j]) == ((not pad[b, i] and not pad[b, j]) or i == j)
    assert pad_positions(pad)[1].tolist() == [0] * 5 + [0, 1, 2, 3]
    inputs = PaddedDenoiser(model, mask, pad).model_inputs(x)
    with torch.no_grad():
        out = model(x, **inputs)
        other = x.clone()
        other[pad] = torch.randint(4, 9, (int(pad.sum()),), generator=torch.Generator().manual_seed(5))
        out_pads = model(other, **inputs)  # other pad tokens: no real position may notice
        real_changed = x.clone()
        real_changed[1, 7] = 4 if int(x[1, 7]) != 4 else 5
        out_real = model(real_changed, **inputs)  # another real token: no pad position may notice
    real = ~pad
    skip = torch.zeros_like(pad)
    if which == "dream":  # the realigned first real position reads a pad's output by construction (never used)
        skip[1, 5] = True
    assert torch.equal(out.logits[real & ~skip], out_pads.logits[real & ~skip])
    assert not torch.equal(out.logits[pad], out_pads.logits[pad])  # the pads did change
    assert torch.equal(out.hidden[pad], out_real.hidden[pad])
    assert not torch.equal(out.hidden[real], out_real.hidden[real])


PROMPTS = [{"prompt": "the cat"}, {"chat": "hello world"}, {"prompt": "hello"}, {"prompt": "the cat the cat world"}]


@pytest.mark.parametrize("which,sampler,block", [("llada", "low-confidence", 4), ("dream", "entropy", None),
                                                  ("llada", "confidence", None)])
def test_batched_prompts_equal_per_prompt_generation(tmp_path, which, sampler, block):
    loaded = replica(which, tmp_path)
    kw = dict(sampler=sampler, steps=4, gen_length=8, block_size=block, temperature=GREEDY, progress=False,
              seed=0)
    batched = generate(loaded, 2, prompts=PROMPTS, batch_size=64, **kw)
    assert batched.batch_sizes == [8] and len(batched.nfe) == 1  # one batch, one forward per pass
    assert len(set(batched.left_pad)) > 1 and batched.tokens.shape[0] == 8
    for i, spec in enumerate(PROMPTS):
        alone = generate(loaded, 2, batch_size=1, **spec, **kw)
        for k in range(2):
            row = batched.tokens[2 * i + k, batched.left_pad[2 * i + k]:]
            assert torch.equal(row, alone.tokens[k]), (spec, row, alone.tokens[k])
    assert not (batched.tokens == loaded.tokenizer.mask_id).any()


def test_batched_prompts_on_the_mdlm_backbone_and_fallbacks(tmp_path, tiny_tokenizer):
    loaded = mdlm(tmp_path, tiny_tokenizer)
    prompts = [{"prompt": "a b c d e"}, {"prompt": "a"}, {"prompt": "c d"}]
    kw = dict(sampler="confidence", steps=3, gen_length=6, temperature=GREEDY, progress=False)
    batched = generate(loaded, 1, prompts=prompts, batch_size=8, **kw)
    assert batched.batch_sizes == [3] and batched.left_pad == [0, 4, 3]
    for i, spec in enumerate(prompts):
        alone = generate(loaded, 1, **spec, **kw)
        assert torch.equal(batched.tokens[i, batched.left_pad[i]:], alone.tokens[0])
    # the harness entry point takes caller-built left-padded rows the same way
    from paradistill.errors import UserError
    from paradistill.generation import build_template, sample_rows

    temps = [build_template(tiny_tokenizer, None, spec["prompt"], gen_length=6) for spec in prompts]
    x, fixed, pad = left_pad([r for r, _ in temps], [f for _, f in temps], tiny_tokenizer.pad_id)
    rows = sample_rows(loaded, x, fixed, sampler="confidence", steps=3, temperature=GREEDY, pad=pad).tokens
    assert torch.equal(rows, batched.tokens)
    with pytest.raises(UserError, match="left-padded rows need a full-attention diffusion model"):
        sample_rows(loaded, x, fixed, sampler="adjust", mode="marginal", pad=pad)
    # a custom denoiser cannot hide pads: neighbouring prompts of equal length share batches, the others not
    from paradistill.sampling.base import Denoiser

    same = [{"prompt": "a b"}, {"prompt": "c d"}, {"prompt": "a"}]
    r = generate(loaded, 2, prompts=same, batch_size=8, denoiser=Denoiser(loaded.model, tiny_tokenizer.mask_id),
                 **kw)
    assert r.batch_sizes == [4, 2] and r.left_pad == [0, 0, 0, 0, 1, 1]
    # --length: every template has that length, no pad at all, one batch
    r = generate(loaded, 1, prompts=prompts, length=12, batch_size=8, sampler="confidence", steps=3,
                 progress=False)
    assert r.batch_sizes == [3] and r.left_pad == [0, 0, 0] and r.tokens.shape == (3, 12)


def test_sample_prompts_file_through_the_cli(tmp_path):
    from paradistill.cli import main

    path, _, _ = official_replica("llada", tmp_path)
    tiny_chat_tokenizer(path)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps(p) for p in PROMPTS) + "\n")
    out = tmp_path / "s.jsonl"
    assert main(["sample", str(path), "--prompts", str(prompts), "--num", "2", "--gen-length", "8", "--steps", "4",
                 "--block-size", "4", "--sampler", "low-confidence", "--temperature", str(GREEDY),
                 "--batch-size", "64", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r.get("prompt") or r.get("chat") for r in rows] == [p.get("prompt") or p.get("chat")
                                                                for p in PROMPTS for _ in range(2)]
    loaded = load_checkpoint(path)
    for r in rows:  # pads stripped: each row is its prompt's template + 8 generated tokens, as when sampled alone
        spec = {k: r[k] for k in ("prompt", "chat") if k in r}
        alone = generate(loaded, 1, sampler="low-confidence", steps=4, gen_length=8, block_size=4,
                         temperature=GREEDY, progress=False, **spec)
        assert r["tokens"] == alone.tokens[0].tolist()


def test_prompts_on_an_autoregressive_checkpoint_batch_by_prompt_length(tmp_path, tiny_tokenizer):
    save_checkpoint(tmp_path / "ar", make_model(tiny_tokenizer.vocab_size, seed=4), "ar", tiny_tokenizer,
                    {"seq_len": 10, "keep_bos": True})
    loaded = load_checkpoint(tmp_path / "ar")
    prompts = [{"prompt": "a b"}, {"prompt": "c"}, {"prompt": "d e"}]
    for extra in ({"length": 8}, {"gen_length": 5}):
        r = generate(loaded, 2, prompts=prompts, batch_size=8, progress=False, **extra)
        assert r.batch_sizes == [2, 2, 2]  # an AR batch shares its prompt length: neighbours differ here
        for i, spec in enumerate(prompts):
            ids = [tiny_tokenizer.bos_id, *tiny_tokenizer.encode(spec["prompt"])]
            for k in range(2):
                row = r.tokens[2 * i + k, r.left_pad[2 * i + k]:].tolist()
                assert row[:len(ids)] == ids and len(row) == (8 if "length" in extra else len(ids) + 5)
