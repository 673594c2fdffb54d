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


def greedy_reference(loaded, ctx_words: str, n: int) -> list[int]:
    """Greedy AR decoding by hand: argmax of each next-token distribution, MASK and PAD never chosen."""
    tok, model = loaded.tokenizer, loaded.model
    seq = [tok.bos_id] + tok.encode(ctx_words)
    out = []
    for _ in range(n):
        with torch.no_grad():
            logits = model(torch.tensor([seq]), attn="causal").logits[0, -1].double()
        logits[[tok.mask_id, tok.pad_id]] = -math.inf
        out.append(int(logits.argmax()))
        seq.append(out[-1])
    return out


def gen_request(context: str, **kw):
    from lm_eval.api.instance import Instance

    return Instance(request_type="generate_until", doc={}, arguments=(context, kw), idx=0)


def test_generate_until_greedy_ar_batched_and_cut_at_stop_sequences(tmp_path):
    from paradistill.eval.harness import ParadistillLM, cut_at_eos

    loaded = load_checkpoint(tiny_ckpt(tmp_path, "ar", seed=2))
    tok = loaded.tokenizer
    lm = ParadistillLM(loaded=loaded, batch_size=4)
    contexts = ["a b", "c d", "e f", "g h", "a"]  # four of one prompt length (one batch), one shorter
    full = lm.generate_until([gen_request(c, until=[], max_gen_toks=6) for c in contexts], disable_tqdm=True)
    for c, text in zip(contexts, full):
        assert text == tok.decode(cut_at_eos(greedy_reference(loaded, c, 6), tok))
    # stop at the second generated word of the first request
    words = full[0].split()
    assert len(words) >= 2
    stop = " " + words[1]
    cut = lm.generate_until([gen_request("a b", until=[stop], max_gen_toks=6)], disable_tqdm=True)[0]
    assert cut == full[0][: full[0].find(stop)] and len(cut) < len(full[0])


def test_generate_until_diffusion_samplers_respect_stops(tmp_path):
    from paradistill.eval.harness import ParadistillLM

    loaded = load_checkpoint(tiny_ckpt(tmp_path, "mdlm", seed=1))
    for sampler in ("ancestral", "confidence"):
        lm = ParadistillLM(loaded=loaded, sampler=sampler, steps=4, seed=5)
        reqs = [gen_request(c, until=[], max_gen_toks=5, do_sample=True, temperature=1.0) for c in ("a b", "c", "d e f")]
        full = lm.generate_until(reqs, disable_tqdm=True)
        assert full == lm.generate_until(reqs, disable_tqdm=True)  # seeded
        # a sample may stop at once (EOS drawn first: the empty string); the others are words of the vocabulary
        assert all(len(t.split()) <= 5 and set(t.split()) <= set(WORDS) for t in full), full
        i = next(k for k, t in enumerate(full) if t)
        stop = " " + full[i].split()[-1]
        stopped = [gen_request(c, until=[stop] if k == i else [], max_gen_toks=5, do_sample=True, temperature=1.0)
                   for k, c in enumerate(("a b", "c", "d e f"))]
        cut = lm.generate_until(stopped, disable_tqdm=True)[i]
        assert cut == full[i][: full[i].find(stop)]


def test_generate_until_task_on_ar_matches_hand_greedy(tmp_path):
    from paradistill.eval.harness import cut_at_eos, cut_at_stop
    from paradistill.eval.tasks import run_tasks

    loaded = load_checkpoint(tiny_ckpt(tmp_path, "ar", seed=2))
    tok = loaded.tokenizer
    preds = [cut_at_stop(tok.decode(cut_at_eos(greedy_reference(loaded, c, 3), tok)), (" h",)) for c, _ in DOCS]
    docs = [(c, p if i % 2 else "zzz") for i, ((c, _), p) in enumerate(zip(DOCS, preds))]  # every other one right
    folder = write_task(tmp_path / "gen", "pd_gen", "generate_until", docs,
                        extra="generation_kwargs:\n  until: [\" h\"]\n  max_gen_toks: 3\n")
    (folder / "pd_gen.yaml").write_text((folder / "pd_gen.yaml").read_text().replace("' ' + target", "target"))
    res = run_tasks(loaded, ["pd_gen"], include_path=str(folder))
    assert res["tasks"]["pd_gen"]["exact_match,none"] == pytest.approx(sum(i % 2 for i in range(len(docs))) / len(docs))
    assert res["likelihood"] is None and res["settings"]["sampler"] == "ar"


def test_bad_input_one_line_errors(tmp_path):
    from paradistill.eval import metrics as M
    from paradistill.eval.harness import ParadistillLM
    from paradistill.eval.tasks import run_tasks

    ar = load_checkpoint(tiny_ckpt(tmp_path, "ar"))
    with pytest.raises(UserError, match="cannot generate with sampler 'confidence'") as e:
        ParadistillLM(loaded=ar, sampler="confidence")
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="knows no task 'pd_tinyy'.*did you mean pd_tiny") as e:
        run_tasks(ar, ["pd_tinyy"], include_path=str(write_task(tmp_path / "tasks")))
    assert "\n" not in str(e.value)
    judge = M.load_judge(str(tmp_path / "ar"))
    with pytest.raises(UserError, match="cannot encode sample 1") as e:
        M.judge_inputs([[1], [2]], ["a b", "a zebra"], judge, 99, "other-fingerprint")
    assert "\n" not in str(e.value)
    gd = save_checkpoint(tmp_path / "gd", ar.model, "gd-mdlm", ar.tokenizer, {"seq_len": 16})
    with pytest.raises(UserError, match="defines no likelihood"):
        ParadistillLM(loaded=load_checkpoint(gd)).loglikelihood([])


def test_cli_tasks_lambada_zeroshot_report_and_lm_eval_command(tmp_path, capsys):
    import datasets

    from paradistill.cli import lm_eval_main, main

    ckpt = tiny_ckpt(tmp_path, "mdlm", seed=1)
    folder = write_task(tmp_path / "tasks")
    corpus = tmp_path / "lam"
    datasets.Dataset.from_dict({"text": ["a b c d", "h g f e", "c c h b"]}).save_to_disk(str(corpus))
    out = tmp_path / "ev"
    assert main(["eval", str(ckpt), "--tasks", "pd_tiny", "--task-path", str(folder), "--mc-draws", "4",
                 "--out", str(out / "x.json")]) == 0
    assert main(["eval", str(ckpt), "--lambada", str(corpus), "--zeroshot", f"lambada={corpus}", "--mc-draws", "4",
                 "--out", str(out / "x.json")]) == 0
    tasks = json.loads((out / "tasks.json").read_text())
    assert tasks["likelihood"] == "NELBO upper bound (4 Monte-Carlo draws, seed 0)"
    zs = json.loads((out / "zeroshot.json").read_text())
    assert zs["lambada"]["num_passages"] == 3 and zs["corpora"]["lambada"]["detokenizer"] == "lambada"
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    table = (tmp_path / "rep" / "table.md").read_text()
    assert "| pd_tiny | perplexity |" in table and "SDTT protocol" in table and "NELBO upper bound" in table
    # a bad sampler for the kind and an unknown task: one line each, exit 2
    assert main(["eval", str(tiny_ckpt(tmp_path, "ar")), "--tasks", "pd_tiny", "--task-path", str(folder),
                 "--sampler", "confidence"]) == 2
    assert "cannot generate with sampler 'confidence'" in capsys.readouterr().err
    # lm-eval's own command line with the model registered
    capsys.readouterr()
    assert lm_eval_main(["--model", "paradistill", "--model_args", f"pretrained={ckpt},mc_draws=4",
                         "--tasks", "pd_tiny", "--include_path", str(folder)]) == 0
    assert f"{tasks['tasks']['pd_tiny']['perplexity,none']:.4f}" in capsys.readouterr().out
