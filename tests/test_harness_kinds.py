"""The lm-eval model type on the kinds `test_harness.py` does not cover: BD3-LM (block-diffusion NELBO), an ADJUST
sampler on a base (log-likelihoods are its base's; generate_until goes through the ADJUST sampler), tiny Dream and
LLaDA replicas in their releases' layouts; and the bad-input errors that are raised before any request runs. Each
NELBO is the same number twice with a fixed seed and another with another seed; a one-token continuation's NELBO
converges to log p(token | context) computed independently here."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import reference_sequential

from paradistill.checkpoint import save_checkpoint
from paradistill.data.tokenizers import WordTokenizer
from paradistill.distill.adjust_adapters import ParadistillAdapter
from paradistill.errors import UserError
from paradistill.loader import load_checkpoint
from paradistill.seeding import derive_seed
from test_adjust import random_sampler, save_sampler, structured_model
from test_dlm import official_replica, tiny_chat_tokenizer
from test_harness import DOCS, WORDS

lm_eval = pytest.importorskip("lm_eval")  # installed by `make test` (extra: harness)


def ll_request(context: str, continuation: str):
    from lm_eval.api.instance import Instance

    return Instance(request_type="loglikelihood", doc={}, arguments=(context, continuation), idx=0)


def gen_request(context: str, **kw):
    from lm_eval.api.instance import Instance

    return Instance(request_type="generate_until", doc={}, arguments=(context, kw), idx=0)


def scores(loaded, requests, **model_args) -> list[tuple[float, bool]]:
    from paradistill.eval.harness import ParadistillLM

    return ParadistillLM(loaded=loaded, **model_args).loglikelihood(requests, disable_tqdm=True)


def one_token_reference(model, ids: list[int], mask_id: int, attn) -> float:
    """log p(last token | the others) with the last position masked (MASK logit removed), float64."""
    x = torch.tensor([ids[:-1] + [mask_id]])
    with torch.no_grad():
        logits = model(x, attn=attn).logits[0, len(ids) - 1].double()
    logits[mask_id] = -math.inf
    return float(torch.log_softmax(logits, -1)[ids[-1]])


def check_seeded(loaded, requests, **model_args):
    a = scores(loaded, requests, mc_draws=6, seed=11, **model_args)
    b = scores(loaded, list(reversed(requests)), mc_draws=6, seed=11, **model_args)[::-1]
    d = scores(loaded, requests, mc_draws=6, seed=11, batch_size=4, **model_args)  # draws in two forward passes
    c = scores(loaded, requests, mc_draws=6, seed=12, **model_args)
    assert a == b  # same seed: the same numbers, whatever the order of the requests
    assert [g for _, g in a] == [g for _, g in d]
    assert [ll for ll, _ in d] == pytest.approx([ll for ll, _ in a], rel=1e-6)  # only float summation order differs
    assert all(ll < 0 and math.isfinite(ll) for ll, _ in a)
    assert [ll for ll, _ in a] != [ll for ll, _ in c]
    return a


# ---------------------------------------------------------------------------------------------------- BD3-LM
def test_bd3lm_nelbo_seeded_and_converges_to_the_block_causal_conditional(tmp_path):
    from paradistill.eval.harness import ParadistillLM
    from paradistill.eval.likelihood import ScoreConfig, scorer_for

    block = 2  # not BD3Config's default (4): the block size must come from the checkpoint
    tok = WordTokenizer.from_vocab(WORDS)
    save_checkpoint(tmp_path / "bd3lm", structured_model(tok.vocab_size, seed=3), "bd3lm", tok,
                    {"seq_len": 16, "block_size": block, "keep_bos": True})
    loaded = load_checkpoint(tmp_path / "bd3lm")
    requests = [ll_request(c, " " + t) for c, t in DOCS]
    check_seeded(loaded, requests)
    lm = ParadistillLM(loaded=loaded)
    assert lm.scorer.block == block and lm.bound.startswith("NELBO upper bound (32 ")
    # a one-token continuation: every draw masks it alone, so the NELBO's expectation is log p(token | context)
    # under BD3-LM's attention: its block sees the clean earlier blocks and itself. Independent reference: one
    # single-stream pass with a block-causal mask over [context, MASK] completed to a whole block with MASK.
    for context, word in (("a b c", " d"), ("h g", " e")):  # the token starts a block / ends one
        ctx, cont = lm.encode_pair(context, word)
        ids = ctx + cont
        padded = ids[:-1] + [tok.mask_id] * (1 + (-len(ids)) % block)
        blocks = torch.arange(len(padded)) // block
        mask = blocks[None, :] <= blocks[:, None]  # [L, L]: query block >= key block
        x = torch.tensor([padded])
        with torch.no_grad():
            logits = loaded.model(x, attn=mask).logits[0, len(ids) - 1].double()
        logits[tok.mask_id] = -math.inf
        exact = float(torch.log_softmax(logits, -1)[ids[-1]])
        # the full-attention value differs: the reference really is the block-causal one
        assert abs(one_token_reference(loaded.model, ids, tok.mask_id, "bidirectional") - exact) > 1e-3
        est, greedy = scorer_for(loaded, ScoreConfig(mc_draws=40000, batch_size=8000)).loglikelihood([(ctx, cont)])[0]
        assert est == pytest.approx(exact, rel=0.05)  # 4 sd of the mean of 40000 draws (per-draw sd ~2.6 |nll|)
        assert greedy == (int(logits.argmax()) == ids[-1])


# ---------------------------------------------------------------------------------------------------- ADJUST
L = 12


@pytest.fixture
def base_and_adjust(tmp_path, tiny_tokenizer):
    model = structured_model(tiny_tokenizer.vocab_size)
    save_checkpoint(tmp_path / "base", model, "mdlm", tiny_tokenizer, {"seq_len": L, "keep_bos": True})
    base = load_checkpoint(tmp_path / "base")
    ckpt = save_sampler(tmp_path / "adj", base, random_sampler(ParadistillAdapter.from_loaded(base)))
    return base, load_checkpoint(ckpt)


def test_adjust_scores_with_its_base(base_and_adjust):
    base, adjust = base_and_adjust
    requests = [ll_request(c, " " + t) for c, t in DOCS]
    assert check_seeded(adjust, requests) == scores(base, requests, mc_draws=6, seed=11)
    from paradistill.eval.harness import ParadistillLM

    lm = ParadistillLM(loaded=adjust)
    assert lm.sampler == "adjust" and lm.bound == ParadistillLM(loaded=base).bound


def test_adjust_generate_until_k1_is_sequential_sampling(base_and_adjust):
    from paradistill.eval.harness import ParadistillLM, cut_at_eos

    base, adjust = base_and_adjust
    tok = base.tokenizer
    contexts, n_gen = ["a b", "c d", "e f"], 5  # one prompt length: one canvas of 3 + 5 tokens
    reqs = [gen_request(c, until=[], max_gen_toks=n_gen, do_sample=True, temperature=1.0) for c in contexts]
    for loaded, args in ((adjust, {}), (base, {"sampler": "adjust", "adjust": str(adjust.path)})):
        lm = ParadistillLM(loaded=loaded, tokens_per_pass=1, seed=4, **args)
        assert lm.sampler == "adjust"
        out = lm.generate_until(reqs, disable_tqdm=True)
        x = torch.full((3, 3 + n_gen), tok.mask_id)
        fixed = torch.zeros_like(x, dtype=torch.bool)
        for r, c in enumerate(contexts):
            x[r, :3], fixed[r, :3] = torch.tensor([tok.bos_id] + tok.encode(c)), True
        # the harness bans PAD from generated tokens (PAD is no text token for this checkpoint)
        ref = reference_sequential(base.model, tok.mask_id, x, fixed,
                                   torch.Generator().manual_seed(derive_seed(4, "harness-generate", 0)),
                                   banned_ids=(tok.pad_id,))
        assert out == [tok.decode(cut_at_eos(ref[r, 3:].tolist(), tok)) for r in range(3)] and any(out)
    # K = 4 through the sampler layer: seeded, and cut at a stop sequence
    lm = ParadistillLM(loaded=adjust, tokens_per_pass=4, seed=4)
    full = lm.generate_until(reqs, disable_tqdm=True)
    assert full == lm.generate_until(reqs, disable_tqdm=True)
    assert all(1 <= len(t.split()) <= n_gen for t in full)
    stop = " " + full[0].split()[-1]
    cut = lm.generate_until([gen_request("a b", until=[stop], max_gen_toks=n_gen, do_sample=True, temperature=1.0),
                             *reqs[1:]], disable_tqdm=True)[0]
    assert cut == full[0][: full[0].find(stop)]


# ---------------------------------------------------------------------------------------------------- Dream / LLaDA
@pytest.mark.parametrize("arch", ["dream", "llada"])
def test_dlm_replica_nelbo_seeded_and_converges(tmp_path, arch):
    from paradistill.eval.likelihood import ScoreConfig, scorer_for

    # the release's layout and config keys; a small vocabulary (9 words + specials) keeps 40000 draws cheap
    ids = {"mask_token_id": 12, "pad_token_id": 0, "eos_token_id": 0}
    if arch == "dream":
        ids["bos_token_id"] = 0
    path, _, _ = official_replica(arch, tmp_path, vocab=16, **ids)
    tiny_chat_tokenizer(path)
    loaded = load_checkpoint(path)
    assert loaded.kind == arch and loaded.model.cfg.shift_logits == (arch == "dream")
    requests = [ll_request("hello world", " the cat"), ll_request("the", " cat"), ll_request("cat the", " hello")]
    check_seeded(loaded, requests)
    from paradistill.eval.harness import ParadistillLM

    lm = ParadistillLM(loaded=loaded)
    ctx, cont = lm.encode_pair("hello world", " the")
    assert len(cont) == 1
    exact = one_token_reference(loaded.model, ctx + cont, loaded.tokenizer.mask_id, "bidirectional")
    est, _ = scorer_for(loaded, ScoreConfig(mc_draws=40000, batch_size=8000)).loglikelihood([(ctx, cont)])[0]
    assert est == pytest.approx(exact, rel=0.05)


# ---------------------------------------------------------------------------------------------------- bad input
def one_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def test_bad_samplers_fail_when_the_model_type_is_built(tmp_path, base_and_adjust):
    from paradistill.eval.harness import ParadistillLM

    base, adjust = base_and_adjust
    gd = load_checkpoint(save_checkpoint(tmp_path / "gd", base.model, "gd-mdlm", base.tokenizer, {"seq_len": L}))
    with pytest.raises(UserError, match="'gd-mdlm' model, which cannot generate with sampler 'adjust'") as e:
        ParadistillLM(loaded=gd, sampler="adjust")
    one_line(e)
    with pytest.raises(UserError, match="sampler=adjust on the base .* needs its trained sampler: add adjust=") as e:
        ParadistillLM(loaded=base, sampler="adjust")
    one_line(e)
    assert ParadistillLM(loaded=base, sampler="adjust", adjust_mode="marginal").sampler == "adjust"
    with pytest.raises(UserError, match="adjust_mode='joint'") as e:
        ParadistillLM(loaded=base, sampler="adjust", adjust_mode="joint")
    one_line(e)
    with pytest.raises(UserError, match="'adjust' model, which cannot generate with sampler 'confidence'") as e:
        ParadistillLM(loaded=adjust, sampler="confidence")
    one_line(e)


def test_cli_unknown_task_and_unencodable_samples_are_one_line_errors(tmp_path, capsys):
    import json

    from paradistill.cli import lm_eval_main, main
    from test_harness import write_task

    ckpt = tmp_path / "ar"
    tiny = WordTokenizer.from_vocab(WORDS)
    save_checkpoint(ckpt, structured_model(tiny.vocab_size), "ar", tiny, {"seq_len": 16})
    folder = write_task(tmp_path / "tasks")
    # (`paradistill eval --tasks` with an unknown task: test_harness.py::test_bad_input_one_line_errors)
    assert lm_eval_main(["--model", "paradistill", "--model_args", f"pretrained={ckpt}", "--tasks", "pd_tinyy",
                         "--include_path", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "knows no task pd_tinyy" in err[0], err
    # a judge whose tokenizer cannot encode the samples' text (a word outside its vocabulary)
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps({"text": t}) + "\n" for t in ("a b c", "a zebra b")))
    WordTokenizer.from_vocab(WORDS + ["zebra"]).save(tmp_path / "samples_tokenizer")
    capsys.readouterr()
    assert main(["eval", str(samples), "--tokenizer", str(tmp_path / "samples_tokenizer"), "--metrics", "gen_ppl",
                 "--judge", str(ckpt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot encode sample 1" in err[0], err
