"""Tests for paradistill.eval: metrics that would fail if the math were wrong, MAUVE, report, bad input.
Offline, CPU, tiny models."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"

import numpy as np
import pytest
import torch

from paradistill.checkpoint import LoadedCheckpoint

from paradistill.data.grammar import StoryGrammar
from paradistill.data.tokenizers import WordTokenizer, builtin_tokenizer
from paradistill.errors import UserError
from paradistill.eval import metrics as M
from paradistill.eval.evaluate import (EvalConfig, evaluate_samples, format_table, generator_records, read_samples,
                                       write_outputs)
from paradistill.eval.mauve import MIN_SAMPLES, auto_buckets, featurize, mauve_score


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def G():
    return StoryGrammar()


# ------------------------------------------------------------------------------------------ fake judges
WORDS = ["a", "b", "c"]  # ids 4, 5, 6 after PAD BOS EOS MASK
TOK = WordTokenizer.from_vocab(WORDS)
BOS, A, B_, C = 1, 4, 5, 6


def bigram_table():
    """P[prev, next]: p(a|BOS)=1/2, p(c|BOS)=1/4, p(b|a)=1/4, p(a|b)=1/8; other mass spread over the rest."""
    V = TOK.vocab_size
    P = np.full((V, V), 1.0)
    fixed = {(BOS, A): 1 / 2, (BOS, C): 1 / 4, (A, B_): 1 / 4, (B_, A): 1 / 8}
    for r in range(V):
        free = [c for c in range(V) if (r, c) not in fixed]
        rest = 1.0 - sum(p for (rr, _), p in fixed.items() if rr == r)
        for c in free:
            P[r, c] = rest / len(free)
        for (rr, c), p in fixed.items():
            if rr == r:
                P[r, c] = p
    return torch.tensor(np.log(P), dtype=torch.float32)


class BigramModel(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.table = torch.nn.Parameter(logits, requires_grad=False)
        self.cfg = SimpleNamespace(vocab_size=logits.shape[0], max_len=64)

    def forward(self, ids, attn="causal"):
        return SimpleNamespace(logits=self.table[ids])  # [B, T, V]


def ckpt_judge(model, tok=TOK, **kw):
    loaded = LoadedCheckpoint(path="fake", kind="ar", model=model, tokenizer=tok, config={"method": {"seq_len": 64}})
    return M.CheckpointJudge(loaded, **kw)


def tiny_transformer(V, seed=0):
    from paradistill.models.transformer import ModelConfig, Transformer

    torch.manual_seed(seed)
    model = Transformer(ModelConfig(vocab_size=V, dim=32, n_layers=1, n_heads=2, max_len=64)).eval()
    return model.requires_grad_(False)


# ------------------------------------------------------------------------------------------ Gen PPL
@pytest.mark.parametrize("context,stride", [(None, None), (2, 1), (3, 1), (3, 2)])
def test_gen_ppl_hand_computed(context, stride):
    # samples [BOS a b a] and [BOS c]: scored -log(1/2 * 1/4 * 1/8) and -log(1/4): 4 tokens, 8 ln 2 nats
    judge = ckpt_judge(BigramModel(bigram_table()), context=context, stride=stride)
    ids = [M.strip_sample(s, TOK.bos_id, TOK.pad_id) for s in ([BOS, A, B_, A], [BOS, C, 0, 0])]
    assert ids == [[A, B_, A], [C]]
    g = M.gen_ppl(judge, ids)
    assert g["num_tokens"] == 4
    assert g["ppl"] == pytest.approx(4.0, rel=1e-6)  # exp(8 ln 2 / 4) = 2^2
    assert g["per_sample_nll"][0] == pytest.approx(6 * math.log(2) / 3, rel=1e-6)
    assert g["per_sample_nll"][1] == pytest.approx(math.log(4), rel=1e-6)


def test_sliding_window_scores_each_token_once_with_its_window():
    for n in range(1, 40):
        for C in (2, 3, 5, 8):
            for S in range(1, C):
                plan = M.window_plan(n, C, S)
                targets = [t for s, e, f in plan for t in range(f, e)]
                assert targets == list(range(1, n)), (n, C, S)
                assert all(e - s <= C and f > s for s, e, f in plan)
    model = tiny_transformer(TOK.vocab_size)
    x = torch.randint(4, 7, (9,), generator=gen(0)).tolist()
    z = torch.tensor([[BOS] + x])
    full = ckpt_judge(model).token_nll([x])[0]
    ref = -torch.log_softmax(model(z, attn="causal").logits, -1)[0, :-1].gather(-1, z[0, 1:, None])[:, 0]
    assert np.allclose(full, ref.double().numpy(), atol=1e-5)
    win = ckpt_judge(model, context=4, stride=2).token_nll([x])[0]  # windows (0,4) (2,6) (4,8) (6,10)
    assert np.allclose(win[:3], full[:3], atol=1e-5)  # first window: same context as the full pass
    w = -torch.log_softmax(model(z[:, 2:6], attn="causal").logits, -1)[0]
    assert win[4] == pytest.approx(float(w[2, z[0, 5]]), abs=1e-5)  # target 5 scored in window (2, 6)
    assert not np.allclose(win[3:], full[3:], atol=1e-4)  # the window really truncates the context
    with pytest.raises(UserError, match="stride"):
        ckpt_judge(model, context=4, stride=4)


def test_padding_and_batching_never_change_scores():
    model = tiny_transformer(TOK.vocab_size, seed=1)
    seqs = [torch.randint(4, 7, (n,), generator=gen(n)).tolist() for n in (3, 11, 7, 1)]
    one = [ckpt_judge(model, batch_size=1).token_nll([s])[0] for s in seqs]
    many = ckpt_judge(model, batch_size=4).token_nll(seqs)
    for a, b in zip(one, many):
        assert len(a) == len(b) and np.allclose(a, b, atol=1e-5)
    padded = M.strip_sample([BOS] + seqs[0] + [0, 0, 0], TOK.bos_id, TOK.pad_id)
    assert padded == seqs[0]
    assert M.strip_sample([50256, 7, 50256, 50256], None, 50256, 50256) == [50256, 7, 50256]  # GPT-2: EOS kept


def _tiny_hf(tmp_path, with_tokenizer=True):
    """A tiny GPT-2 whose word-level tokenizer orders the builtin words differently (forces retokenising)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = ["<bos>", "<unk>"] + list(reversed(builtin_tokenizer().tokens[4:]))
    raw = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(words), n_positions=32, n_embd=32, n_layer=1, n_head=2,
                                       bos_token_id=0, eos_token_id=0))
    model.eval()  # GPT-2 has dropout
    path = tmp_path / ("hf" if with_tokenizer else "hf_notok")
    model.save_pretrained(path)
    if with_tokenizer:
        PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<bos>", unk_token="<unk>").save_pretrained(path)
    return path, model, words


@pytest.mark.slow  # ~20 s on the shared CPU: transformers import + two tiny GPT-2 models
def test_hf_judge_retokenises_and_scores_first_token_given_bos(tmp_path, G):
    path, model, words = _tiny_hf(tmp_path)
    rows = G.sample(3, 12, gen(3)).tolist()
    tok = builtin_tokenizer()
    ids = [M.strip_sample(r, tok.bos_id, tok.pad_id) for r in rows]
    texts = [tok.decode(r) for r in rows]
    judge = M.load_judge(str(path), context=8, stride=4)
    seqs, how = M.judge_inputs(ids, texts, judge, tok.vocab_size, tok.fingerprint())
    assert how.startswith("retokenised") and seqs[0] == [words.index(w) for w in texts[0].split()]
    nll = judge.token_nll(seqs[:1])[0]
    z = torch.tensor([[0] + seqs[0][:7]])  # first window: BOS + 7 tokens
    with torch.no_grad():
        ref = -torch.log_softmax(model(z).logits, -1)[0, :-1].gather(-1, z[0, 1:, None])[:, 0]
    assert len(nll) == len(seqs[0]) and np.allclose(nll[:7], ref.double().numpy(), atol=1e-5)
    notok, _, _ = _tiny_hf(tmp_path, with_tokenizer=False)
    with pytest.raises(UserError, match="no tokenizer.*retokenisation is impossible"):
        M.judge_inputs(ids, texts, M.load_judge(str(notok)), tok.vocab_size, tok.fingerprint())


# ------------------------------------------------------------------------------------------ exact NLL
def test_exact_nll_equals_sum_of_generator_conditionals(G):
    x = G.sample(16, 24, gen(5))
    totals, counts = M.exact_nll(x.tolist(), G)
    cond = G.conditional_logprobs(x)  # [B, L, V]: entry i predicts x_{i+1}
    ref = -cond[:, :-1].gather(-1, x[:, 1:, None])[..., 0].sum(-1)
    assert np.allclose(totals, ref.numpy(), rtol=0, atol=1e-10) and (counts == 23).all()
    short = [x[0, :5].tolist(), x[1].tolist()]  # ragged rows are grouped by length
    t2, c2 = M.exact_nll(short, G)
    assert t2[0] == pytest.approx(float(-cond[0, :4].gather(-1, x[0, 1:5, None]).sum()), abs=1e-10)
    assert list(c2) == [4, 23]


def test_grammar_violations_counted(G):
    x = G.sample(64, 32, gen(6))
    v = M.grammar_violations(x.tolist(), G)
    clean = x[torch.as_tensor(v == 0)][0].clone()
    state = G.states(clean[None])[0, 4]
    floor = (G.emit_logp[state] <= G.noise_logp + 1e-9) & (torch.arange(G.vocab_size) > 3)
    bad_tok = int(torch.nonzero(floor)[0, 0])
    broken = clean.clone()
    broken[5] = bad_tok  # probability only through the noise floor
    assert list(M.grammar_violations([clean.tolist(), broken.tolist()], G))[0] == 0
    assert M.grammar_violations([broken.tolist()], G)[0] >= 1
    assert 0.7 < float((v == 0).mean()) < 1.0  # noise 0.002 per token: (1 - 0.002)^31 ~ 0.94 of rows are clean


def test_generator_samples_score_exp_entropy_rate(G):
    res = evaluate_samples(generator_records(600, 64, seed=11), EvalConfig())
    e = res["exact"]
    rate = G.exact_entropy_rate(length=64)
    assert e["nll_ci95"][0] <= rate <= e["nll_ci95"][1]
    assert e["ppl_ci95"][0] <= math.exp(rate) <= e["ppl_ci95"][1]
    assert e["generator_ppl"] == pytest.approx(math.exp(rate)) and e["num_tokens"] == 600 * 63
    assert e["nll_ci95"][1] - e["nll_ci95"][0] < 0.1
    # a worse sampler must score worse: shuffle tokens within each row (keeping BOS first)
    recs = generator_records(64, 64, seed=12)
    for r in recs:
        body = r["tokens"][1:]
        r["tokens"] = [1] + [body[i] for i in torch.randperm(63, generator=gen(0)).tolist()]
    bad = evaluate_samples(recs, EvalConfig(tokenizer="builtin"))
    assert bad["exact"]["nll_ci95"][0] > e["nll_ci95"][1]


# ------------------------------------------------------------------------------------------ diversity
def test_entropy_of_known_counts_and_distinct_n():
    assert M.entropy_of_counts([1, 1, 1, 1]) == pytest.approx(math.log(4))
    assert M.entropy_of_counts([2, 1, 1, 0]) == pytest.approx(1.5 * math.log(2))
    assert M.entropy_of_counts([5]) == 0.0 and M.unigram_entropy([]) == 0.0
    assert M.unigram_entropy([7, 7, 8, 9]) == pytest.approx(1.5 * math.log(2))
    assert M.distinct_n([[1, 2, 1, 2]], 1) == pytest.approx(2 / 4)
    assert M.distinct_n([[1, 2, 1, 2]], 2) == pytest.approx(2 / 3)
    assert M.distinct_n([[1, 2, 3], [1, 2, 4]], 3) == 1.0 and M.distinct_n([[1]], 2) == 0.0


def test_nll_summary_ci_matches_per_sample_mean_for_equal_lengths():
    a = np.array([3.0, 5.0, 4.0, 6.0]) * 10
    s = M.nll_summary(a, [10] * 4)
    per = a / 10
    se = per.std(ddof=1) / 2
    assert s["nll_per_token"] == pytest.approx(4.5) and s["ppl"] == pytest.approx(math.exp(4.5))
    assert s["nll_ci95"] == pytest.approx([4.5 - 1.96 * se, 4.5 + 1.96 * se])


# ------------------------------------------------------------------------------------------ MAUVE
def _texts(G, n, seed):
    tok = builtin_tokenizer()
    return [tok.decode(r) for r in G.sample(n, 64, gen(seed)).tolist()]


@pytest.mark.parametrize("features", ["ngram", pytest.param("minilm", marks=pytest.mark.slow)])
def test_mauve_self_high_degenerate_low(G, features):
    p, q = _texts(G, 48, 0), _texts(G, 48, 1)
    fp, fq, fr = featurize(p, features), featurize(q, features), featurize([p[0]] * 48, features)
    assert mauve_score(p_features=fp, q_features=fp)["mauve"] >= 0.9
    assert mauve_score(p_features=fp, q_features=fq)["mauve"] >= 0.9  # independent draws, same distribution
    assert mauve_score(p_features=fr, q_features=fp)["mauve"] <= 0.2
    assert auto_buckets(48) == 5 and auto_buckets(20) == 4 and auto_buckets(5000) == 500


def test_mauve_too_small_sets_error(G):
    small = featurize(_texts(G, MIN_SAMPLES - 1, 2), "ngram")
    big = featurize(_texts(G, 32, 3), "ngram")
    with pytest.raises(UserError, match="reference set has 15"):
        mauve_score(p_features=big, q_features=small)
    with pytest.raises(UserError, match="num_buckets=40"):
        mauve_score(p_features=big, q_features=big, num_buckets=40)


# ------------------------------------------------------------------------------------------ files, report
def test_bad_samples_files(tmp_path, G):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(UserError, match="is empty"):
        read_samples(empty)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tokens": [1, 4]}\n\n{"tokens": [1, 5]\n')
    with pytest.raises(UserError, match="line 3 is not valid JSON"):
        read_samples(bad)
    with pytest.raises(UserError, match="does not exist"):
        read_samples(tmp_path / "none.jsonl")
    small = tmp_path / "ref.jsonl"
    small.write_text("".join(json.dumps(r) + "\n" for r in generator_records(8, 16, seed=1)))
    cfg = EvalConfig(metrics="mauve", reference=str(small), mauve_features="ngram")
    with pytest.raises(UserError, match="reference set has 8"):
        evaluate_samples(generator_records(32, 16, seed=0), cfg)
    with pytest.raises(UserError, match="needs a judge"):
        evaluate_samples(generator_records(4, 16), EvalConfig(metrics="gen_ppl"))
    with pytest.raises(UserError, match="unknown metric"):
        evaluate_samples(generator_records(4, 16), EvalConfig(metrics="bleu"))


def test_cli_eval_and_report(tmp_path, capsys):
    from paradistill.cli import main
    from paradistill.eval.report import write_report

    for n, seed in ((64, 0), (32, 1)):
        recs = generator_records(n, 32, seed)
        samples = tmp_path / f"run{seed}" / "samples.jsonl"
        samples.parent.mkdir()
        samples.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "_line"}) + "\n" for r in recs))
        assert main(["eval", str(samples), "--label", f"set{seed}", "--steps", str(8 * (seed + 1))]) == 0
    res = json.loads((tmp_path / "run0" / "samples.eval.json").read_text())
    assert res["exact"]["num_tokens"] == 64 * 31 and len(res["per_sample"]["exact_nll"]) == 64
    assert (tmp_path / "run0" / "samples.eval.md").read_text() == format_table(res)
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["eval", str(tmp_path / "empty.jsonl")]) == 2
    assert "is empty" in capsys.readouterr().err
    rep = write_report([tmp_path / "run0", tmp_path / "run1"], tmp_path / "rep")
    table = (tmp_path / "rep" / "table.md").read_text()
    assert "set0" in table and "set1" in table and f"{res['exact']['ppl']:.3f}" in table
    for f in ("quality_vs_nfe.png", "quality_vs_latency.png"):
        assert (tmp_path / "rep" / f).stat().st_size > 5000
    assert rep["num_results"] == 2
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    helptext = capsys.readouterr().out
    for opt in ("--metrics", "--judge", "--judge-context", "--judge-stride", "--reference", "--mauve-features",
                "--val-data", "--tokenizer", "--samples-out"):
        assert opt in helptext


def test_val_perplexity_ar_is_exact_cross_entropy(G):
    from paradistill.checkpoint import LoadedCheckpoint

    tok = builtin_tokenizer()
    model = tiny_transformer(tok.vocab_size, seed=2)
    loaded = LoadedCheckpoint(Path("fake"), "ar", model, tok, {"method": {"seq_len": 16}})
    rows = G.sample(10, 16, gen(4)).numpy()
    v = M.val_perplexity(loaded, rows, batch_size=4, progress=False)
    x = torch.as_tensor(rows)
    with torch.no_grad():
        ce = torch.nn.functional.cross_entropy(model(x[:, :-1], attn="causal").logits.transpose(1, 2), x[:, 1:])
    assert v["num_tokens"] == 10 * 15 and v["ppl"] == pytest.approx(math.exp(float(ce)), rel=1e-5)
    # the same model as a judge: Gen PPL of these rows = val PPL (position 0 BOS unscored in both)
    judge = ckpt_judge(model, tok=tok)
    assert M.gen_ppl(judge, [r[1:].tolist() for r in rows])["ppl"] == pytest.approx(v["ppl"], rel=1e-5)


def test_write_outputs_roundtrip(tmp_path):
    res = evaluate_samples(generator_records(20, 16, seed=3), EvalConfig())
    j, md = write_outputs(res, tmp_path / "x" / "e.json")
    back = json.loads(j.read_text())
    assert back["exact_ppl"] == pytest.approx(res["exact_ppl"]) and "exact Gen PPL" in md.read_text()
