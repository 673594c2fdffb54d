"""Bad input table (issue #12): every case runs the real CLI and must exit with status 2 and one clear
message that names the bad input (no traceback)."""

from __future__ import annotations

import json

import pytest

from conftest import make_model
from paradistill.cli import main
from paradistill.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from paradistill.data.tokenizers import WordTokenizer

    tmp = tmp_path_factory.mktemp("bad")
    tok = WordTokenizer.from_vocab(["a", "b", "c", "d", "e", "f", "g", "h"])
    model = make_model(tok.vocab_size)
    save_checkpoint(tmp / "mdlm", model, "mdlm", tok, {"seq_len": 12, "keep_bos": True})
    save_checkpoint(tmp / "ar", model, "ar", tok, {"seq_len": 12, "keep_bos": True})
    trunc = save_checkpoint(tmp / "trunc", model, "mdlm", tok, {"seq_len": 12})
    blob = (trunc / "model.safetensors").read_bytes()
    (trunc / "model.safetensors").write_bytes(blob[: len(blob) // 3])
    save_checkpoint(tmp / "vocab", model, "mdlm", WordTokenizer.from_vocab(["x"]), {"seq_len": 12})
    (tmp / "notckpt").mkdir()
    (tmp / "empty.txt").write_text("  \n\n ")
    (tmp / "good.txt").write_text("to be or not to be\n\nthat is the question\n")
    (tmp / "binary.txt").write_bytes(b"\x00\x01\x02 hello \x00")
    (tmp / "empty.jsonl").write_text("")
    (tmp / "broken.jsonl").write_text(json.dumps({"text": "a b", "tokens": [1, 4, 5]}) + "\n{oops\n")
    (tmp / "recipe.yaml").write_text("train:\n  max_stepz: 3\n")
    gpt2 = tmp / "gpt2bad"
    gpt2.mkdir()
    (gpt2 / "vocab.json").write_text(json.dumps({"a": 0, "b": 1}))
    (gpt2 / "merges.txt").write_text("#version: 0.2\nx y\n")
    return tmp


CASES = [
    # (id, argv with {d} for the fixture folder, regex the message must match)
    ("missing corpus", "data prepare --corpus {d}/nope.txt", r"nope\.txt"),
    ("empty corpus", "data prepare --corpus {d}/empty.txt", r"empty\.txt.*(empty|no documents)"),
    ("binary corpus", "data prepare --corpus {d}/binary.txt", r"binary\.txt"),
    ("unknown tokenizer", "data prepare --corpus {d}/good.txt --tokenizer sentencepiece", r"sentencepiece"),
    ("unknown dataset offline", "data prepare --corpus hf:no_such_dataset_xyz", r"no_such_dataset_xyz"),
    ("sequence length < 2", "data prepare --seq-len 1", r"seq[-_]len"),
    ("vocab/merges mismatch", "data prepare --corpus {d}/good.txt --tokenizer gpt2:{d}/gpt2bad", r"merges"),
    ("recipe key misspelled", "train mdlm --recipe tiny train.max_step=3", r"max_step.*did you mean 'max_steps'"),
    ("recipe value wrong type", "train mdlm --recipe tiny train.lr=fast", r"train\.lr: expected a number"),
    ("unknown recipe name", "train mdlm --recipe tinyy", r"unknown recipe 'tinyy'.*did you mean 'tiny'"),
    ("recipe file key misspelled", "train mdlm --recipe {d}/recipe.yaml", r"max_stepz.*max_steps"),
    ("missing recipe file", "train mdlm --recipe {d}/missing.yaml", r"missing\.yaml"),
    ("bd3lm block does not divide", "train bd3lm --recipe tiny --block-size 5", r"block_size=5"),
    ("missing checkpoint", "sample {d}/nothing", r"nothing.*does not exist"),
    ("not a checkpoint", "sample {d}/notckpt", r"notckpt.*not a paradistill checkpoint"),
    ("truncated checkpoint", "sample {d}/trunc", r"trunc.*truncated or corrupt"),
    ("checkpoint vocab mismatch", "sample {d}/vocab", r"vocab 12 != tokenizer vocab 5"),
    ("unknown sampler", "sample {d}/mdlm --sampler ancestal", r"ancestal.*did you mean 'ancestral'"),
    ("steps < 1", "sample {d}/mdlm --steps 0", r"steps=0"),
    ("top-p outside (0, 1]", "sample {d}/mdlm --top-p 1.5", r"top_p=1\.5"),
    ("temperature <= 0", "sample {d}/mdlm --temperature 0", r"temperature=0"),
    ("prompt longer than sequence", "sample {d}/mdlm --prompt 'a b c d e f g h a b c d e f'", r"prompt.*15 tokens.*length is 12"),
    ("block size does not divide", "sample {d}/mdlm --block-size 5", r"block_size=5 does not divide"),
    ("infill with AR model", "sample {d}/ar --infill 'a [MASK] b'", r"autoregressive.*infill"),
    ("empty samples file", "eval {d}/empty.jsonl", r"empty\.jsonl.*empty|no samples"),
    ("malformed JSONL line", "eval {d}/broken.jsonl", r"broken\.jsonl.*line 2"),
    ("wrong model type for command", "distill sdtt --teacher {d}/ar --from-steps 8 --to-steps 4 --out {d}/o", r"'ar'"),
]


@pytest.mark.parametrize("case,argv,pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error(files, capsys, monkeypatch, case, argv, pattern):
    import re
    import shlex

    monkeypatch.setenv("PARADISTILL_CACHE", str(files / "cache"))
    code = main(shlex.split(argv.format(d=files)))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("paradistill: error:"), err
    assert re.search(pattern, err, flags=re.S), err
