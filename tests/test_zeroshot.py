"""LAMBADA (SDTT protocol) and the zero-shot perplexity suite on tiny checkpoints and local corpora, checked
against hand computations; a corpus saved with save_to_disk scores exactly as the same corpus from the hub path."""

from __future__ import annotations

import math

import pytest
import torch

from paradistill.errors import UserError
from paradistill.eval.detokenizers import get_detokenizer
from paradistill.eval.likelihood import ScoreConfig
from paradistill.eval.zeroshot import lambada, parse_corpora, zeroshot_perplexity, zeroshot_rows
from paradistill.loader import load_checkpoint

from test_harness import reference_ar, tiny_ckpt

PASSAGES = ["a b c d", "h g f e a", "c c h b", "d d b", "e f g h a b", "b"]


def saved_corpus(tmp_path, column="text", texts=PASSAGES):
    import datasets

    path = tmp_path / f"corpus_{column}"
    datasets.Dataset.from_dict({column: texts}).save_to_disk(str(path))
    return str(path)


def test_detokenizers_undo_corpus_artefacts():
    assert get_detokenizer("wikitext")("In 1 @,@ 000 years , the ( big ) war @-@ time = = History = =") == \
        "In 1,000 years, the (big) war-time == History =="
    assert get_detokenizer("ptb")("it does n't cost $ N , says john 's aunt") == "it doesn't cost $1 , says john's aunt"
    assert get_detokenizer("lm1b")("I 'm here , right ? Yes .") == "I'm here, right? Yes."
    assert get_detokenizer("lambada")("  \u201cHi\u201d she said ") == '\n"Hi" she said'
    with pytest.raises(UserError, match="unknown detokenizer"):
        get_detokenizer("nope")


def test_lambada_ar_accuracy_and_ppl_match_hand_computation(tmp_path):
    loaded = load_checkpoint(tiny_ckpt(tmp_path, "ar", seed=2))
    res = lambada(loaded, saved_corpus(tmp_path), progress=False)["lambada"]
    ref = [reference_ar(loaded, p.rsplit(" ", 1)[0], p.rsplit(" ", 1)[1]) for p in PASSAGES if " " in p]
    assert res["num_passages"] == len(ref) == 5
    assert res["accuracy"] == pytest.approx(sum(g for _, g in ref) / len(ref))
    assert res["ppl"] == pytest.approx(math.exp(-sum(ll for ll, _ in ref) / len(ref)), rel=1e-6)


def test_lambada_mdlm_greedy_is_one_masked_pass_before_eos_and_seeded(tmp_path):
    loaded = load_checkpoint(tiny_ckpt(tmp_path, "mdlm", seed=1))
    tok = loaded.tokenizer
    src = saved_corpus(tmp_path)
    a = lambada(loaded, src, ScoreConfig(mc_draws=8, seed=1), progress=False)["lambada"]
    b = lambada(loaded, src, ScoreConfig(mc_draws=8, seed=1), progress=False)["lambada"]
    assert a == b
    hits = []
    for p in PASSAGES[:5]:
        prefix, word = p.rsplit(" ", 1)
        x = torch.tensor([[tok.bos_id] + tok.encode(prefix) + [tok.mask_id, tok.eos_id]])
        with torch.no_grad():
            logits = loaded.model(x, attn="bidirectional").logits[0, -2]
        logits[tok.mask_id] = -math.inf
        hits.append(int(logits.argmax()) == tok.encode(word)[0])
    assert a["accuracy"] == pytest.approx(sum(hits) / len(hits))
    assert a["ppl"] > 1


@pytest.mark.parametrize("kind", ["ar", "mdlm"])
def test_zeroshot_saved_corpus_scores_like_the_hub_path(tmp_path, monkeypatch, kind):
    import datasets

    loaded = load_checkpoint(tiny_ckpt(tmp_path, kind, seed=3))
    texts = PASSAGES * 4
    disk = saved_corpus(tmp_path, "sentence", texts)
    cfg = ScoreConfig(mc_draws=4, seed=0)
    local = zeroshot_perplexity(loaded, [("ptb", disk)], cfg, progress=False)["corpora"]["ptb"]
    calls = []

    def fake_hub(path, name=None, split=None, **kw):  # the hub stands in for the same rows, offline
        calls.append((path, name, split))
        return datasets.load_from_disk(disk)

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    hub = zeroshot_perplexity(loaded, parse_corpora("ptb"), cfg, progress=False)["corpora"]["ptb"]
    assert calls == [("ptb_text_only", None, "test")]
    assert hub["source"] == "hub:ptb_text_only" and local["source"] == disk
    assert {k: v for k, v in hub.items() if k != "source"} == {k: v for k, v in local.items() if k != "source"}
    # rows of window - 1 tokens from the BOS doc EOS stream; AR: exactly the summed next-token NLL of each row
    rows = zeroshot_rows(texts, loaded.tokenizer, "ptb", 16)
    assert local["rows"] == len(rows) and local["tokens"] == sum(len(r) for r in rows) == sum(
        len(t.split()) + 2 for t in texts)
    if kind == "ar":
        tok = loaded.tokenizer
        total = 0.0
        for r in rows:
            x = torch.tensor([[tok.bos_id] + r])
            with torch.no_grad():
                lp = loaded.model(x[:, :-1], attn="causal").logits.double().log_softmax(-1)
            total -= float(lp[0].gather(-1, x[0, 1:, None]).sum())
        assert local["nll_per_token"] == pytest.approx(total / local["tokens"], rel=1e-6)


def test_zeroshot_bad_corpora(tmp_path):
    with pytest.raises(UserError, match="unknown corpus 'wiki'"):
        parse_corpora("wiki")
    assert [n for n, _ in parse_corpora("paper")] == ["wikitext103", "ptb", "lm1b", "lambada", "ag_news", "pubmed",
                                                        "arxiv"]
    loaded = load_checkpoint(tiny_ckpt(tmp_path, "ar"))
    with pytest.raises(UserError, match="no 'sentence' column") as e:
        zeroshot_perplexity(loaded, [("ptb", saved_corpus(tmp_path, "text"))], progress=False)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="cannot load hub dataset 'ptb_text_only'.*save_to_disk") as e:
        zeroshot_perplexity(loaded, [("ptb", None)], progress=False)
    assert "\n" not in str(e.value)
