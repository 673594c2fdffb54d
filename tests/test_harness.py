"""lm-eval-harness model type: local tasks (YAML + JSONL written here) on tiny AR / MDLM checkpoints, checked
against log-likelihoods computed independently in the test; generate_until stop sequences; bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from paradistill.checkpoint import save_checkpoint
from paradistill.data.tokenizers import WordTokenizer
from paradistill.errors import UserError
from paradistill.loader import load_checkpoint

lm_eval = pytest.importorskip("lm_eval")  # installed by `make test` (extra: harness)

WORDS = ["a", "b", "c", "d", "e", "f", "g", "h"]
DOCS = [("a b c", "d"), ("b c", "d e"), ("h g f e", "a"), ("c", "c c h"), ("d d", "b")]


def tiny_ckpt(tmp_path: Path, kind: str, seed: int = 0, **method) -> Path:
    from paradistill.models.transformer import ModelConfig, Transformer

    tok = WordTokenizer.from_vocab(WORDS)
    torch.manual_seed(seed)
    model = Transformer(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layers=2, n_heads=2, max_len=64)).eval()
    with torch.no_grad():  # sharper than the default init, so greedy choices and NLLs differ clearly between tokens
        model.head.weight.mul_(8.0) if not model.cfg.tie_weights else model.embed.weight.mul_(3.0)
    return save_checkpoint(tmp_path / kind, model, kind, tok, {"seq_len": 16, **method})


def write_task(folder: Path, name: str = "pd_tiny", output_type: str = "loglikelihood", docs=DOCS,
               extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps({"context": c, "target": t}) + "\n" for c, t in docs))
    metrics = ("  - metric: perplexity\n    aggregation: perplexity\n    higher_is_better: false\n"
               "  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n") \
        if output_type == "loglikelihood" else \
        "  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n"
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
        f"test_split: test\noutput_type: {output_type}\ndoc_to_text: \"{{{{context}}}}\"\n"
        f"doc_to_target: \"{{{{' ' + target}}}}\"\n{extra}metric_list:\n{metrics}")
    return folder


def reference_ar(loaded, ctx_words: str, cont_words: str) -> tuple[float, bool]:
    """log p(cont | BOS ctx) one token at a time, each from its own forward pass over the prefix so far."""
    tok, model = loaded.tokenizer, loaded.model
    seq = [tok.bos_id] + tok.encode(ctx_words)
    total, greedy = 0.0, True
    for t in tok.encode(cont_words):
        with torch.no_grad():
            logits = model(torch.tensor([seq]), attn="causal").logits[0, -1].double()
        lp = torch.log_softmax(logits, -1)
        total += float(lp[t])
        greedy &= int(lp.argmax()) == t
        seq.append(t)
    return total, greedy


def test_ar_local_task_matches_hand_computed_loglikelihoods(tmp_path):
    from paradistill.eval.tasks import run_tasks

    loaded = load_checkpoint(tiny_ckpt(tmp_path, "ar"))
    ref = [reference_ar(loaded, c, t) for c, t in DOCS]
    res = run_tasks(loaded, ["pd_tiny"], include_path=str(write_task(tmp_path / "tasks")))
    r = res["tasks"]["pd_tiny"]
    assert r["perplexity,none"] == pytest.approx(math.exp(-sum(ll for ll, _ in ref) / len(ref)), rel=1e-6)  # float32 passes
    assert r["acc,none"] == pytest.approx(sum(g for _, g in ref) / len(ref))
    assert res["likelihood"] == "exact"


def test_mdlm_nelbo_is_seeded_and_bounds_the_exact_conditional(tmp_path):
    from paradistill.eval.harness import ParadistillLM
    from paradistill.eval.likelihood import ScoreConfig, scorer_for

    loaded = load_checkpoint(tiny_ckpt(tmp_path, "mdlm", seed=1))
    folder = write_task(tmp_path / "tasks")
    from paradistill.eval.tasks import run_tasks

    a = run_tasks(loaded, ["pd_tiny"], include_path=str(folder), mc_draws=8, seed=3)["tasks"]["pd_tiny"]
    b = run_tasks(loaded, ["pd_tiny"], include_path=str(folder), mc_draws=8, seed=3)["tasks"]["pd_tiny"]
    c = run_tasks(loaded, ["pd_tiny"], include_path=str(folder), mc_draws=8, seed=4)["tasks"]["pd_tiny"]
    assert a["perplexity,none"] == b["perplexity,none"] and a["perplexity,none"] != c["perplexity,none"]
    # one-token continuation, no time conditioning: E_t[(1/t) 1{masked} nll] = (1 - eps) nll exactly (log-linear)
    lm = ParadistillLM(loaded=loaded)
    ctx, cont = lm.encode_pair("a b c", " d")
    with torch.no_grad():
        x = torch.tensor([ctx + [loaded.tokenizer.mask_id]])
        logits = loaded.model(x, attn="bidirectional").logits[0, -1].double()
        logits[loaded.tokenizer.mask_id] = -math.inf
        exact = float(torch.log_softmax(logits, -1)[cont[0]])
    est, greedy = scorer_for(loaded, ScoreConfig(mc_draws=40000, batch_size=8000)).loglikelihood([(ctx, cont)])[0]
    assert est == pytest.approx(exact * (1 - 1e-3), rel=0.05)  # per-draw sd ~2.4 |nll|: 4 sd of the mean
    assert greedy == (int(logits.argmax()) == cont[0])
