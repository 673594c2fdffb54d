"""Tests for paradistill.data: tokenizers, corpora, packing, info. Offline; < 30 s on 2 cores."""

from __future__ import annotations

import os
import sys
from pathlib import Path

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"  # nothing in these tests may reach the hub

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
try:
    import paradistill  # noqa: F401
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(REPO / "src"))

from paradistill.data import corpora, packing, tokenizers  # noqa: E402
from paradistill.data.corpora import load_corpus, split_mask  # noqa: E402
from paradistill.data.info import describe, format_info  # noqa: E402
from paradistill.data.packing import batches, load_prepared, prepare_data, token_dtype  # noqa: E402
from paradistill.data.tokenizers import (  # noqa: E402
    BPETokenizer, CharTokenizer, WordTokenizer, build_tokenizer, builtin_tokenizer, load_tokenizer)
from paradistill.errors import UserError  # noqa: E402

SHARED = Path(os.environ.get("PARADISTILL_SHARED", REPO.parent / "shared"))
GPT2_DIR = SHARED / "data" / "gpt2-tokenizer"
SHAKESPEARE = SHARED / "data" / "tinyshakespeare.txt"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data '{path}' is absent: set PARADISTILL_SHARED to the shared/ folder")
    return path


@pytest.fixture(scope="module")
def gpt2() -> BPETokenizer:
    return BPETokenizer(need(GPT2_DIR))


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory, gpt2) -> Path:
    from transformers import PreTrainedTokenizerFast

    from tokenizers import Tokenizer as RawTokenizer
    from tokenizers import decoders, models, pre_tokenizers

    raw = RawTokenizer(models.BPE.from_file(str(GPT2_DIR / "vocab.json"), str(GPT2_DIR / "merges.txt")))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    out = tmp_path_factory.mktemp("hf_tok")
    fast.save_pretrained(str(out))
    return out


TEXTS = ["the cat sat on the mat", "a dog ran", "the dog sat\nand the cat ran far away"]


# ------------------------------------------------------------------------------------------ tokenizers
def test_gpt2_bpe(gpt2):
    assert gpt2.encode("Hello world") == [15496, 995]
    assert (gpt2.bos_id, gpt2.eos_id, gpt2.pad_id, gpt2.mask_id, gpt2.vocab_size) == (50256, 50256, 50256, 50257, 50258)
    text = "Héllo wörld — naïve 東京 🙂\n  tabs\tand spaces "
    assert gpt2.decode(gpt2.encode(text)) == text
    assert gpt2.decode([gpt2.bos_id, 15496, gpt2.mask_id, 995, gpt2.eos_id]) == "Hello world"
    assert "<|mask|>" in gpt2.decode([15496, gpt2.mask_id], skip_special=False)
    assert build_tokenizer(f"gpt2:{GPT2_DIR}").fingerprint() == build_tokenizer(str(GPT2_DIR)).fingerprint()


def test_char_roundtrip_shakespeare():
    text = need(SHAKESPEARE).read_bytes()[:100_000].decode("utf-8", errors="ignore")
    tok = CharTokenizer.fit([text])
    assert tok.tokens[:4] == ["[PAD]", "[BOS]", "[EOS]", "[MASK]"] and tok.vocab_size == 4 + len(set(text))
    ids = tok.encode(text)
    assert min(ids) >= 4 and tok.decode(ids) == text
    assert tok.decode([tok.bos_id] + ids[:5] + [tok.mask_id]) == text[:5]
    with pytest.raises(UserError, match="'€'"):
        tok.encode("hear me €")


def test_word_tokenizer():
    tok = WordTokenizer.fit(TEXTS)
    assert tok.tokens[:5] == ["[PAD]", "[BOS]", "[EOS]", "[MASK]", "[UNK]"] and tok.index["the"] == 5  # most frequent
    assert tok.decode(tok.encode("the cat ran")) == "the cat ran"
    assert tok.encode("the zebra") == [tok.index["the"], tok.unk_id]
    small = WordTokenizer.fit(TEXTS, max_size=7)
    assert small.vocab_size == 7
    strict = WordTokenizer.from_vocab(["hello", "world"])
    assert strict.encode("hello world") == [4, 5] and strict.mask_id == 3
    with pytest.raises(UserError, match="'zebra'"):
        strict.encode("hello zebra")


def test_builtin_tokenizer_ids_match_grammar():
    from paradistill.data.grammar import StoryGrammar

    g, tok = StoryGrammar(), builtin_tokenizer()
    assert tok.tokens == list(g.vocab) and tok.vocab_size == len(g.vocab)
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.mask_id) == (0, 1, 2, 3)
    doc = g.sample_documents(1, torch.Generator().manual_seed(3))[0]
    words = [i for i in doc if i > 3]
    assert tok.encode(g.decode(doc)) == words and tok.decode(doc) == g.decode(doc)


@pytest.mark.parametrize("spec", ["char", "word", "builtin", "gpt2", "hf"])
def test_save_load_roundtrip(spec, tmp_path, request):
    if spec == "gpt2":
        tok = request.getfixturevalue("gpt2")
    elif spec == "hf":
        tok = build_tokenizer(f"hf:{request.getfixturevalue('hf_dir')}")
    else:
        tok = build_tokenizer(spec, texts=TEXTS)
    tok.save(tmp_path / "tok")
    back = load_tokenizer(tmp_path / "tok")
    assert type(back) is type(tok) and back.fingerprint() == tok.fingerprint()
    assert (back.vocab_size, back.bos_id, back.eos_id, back.pad_id, back.mask_id) == \
        (tok.vocab_size, tok.bos_id, tok.eos_id, tok.pad_id, tok.mask_id)
    assert back.encode("the cat sat") == tok.encode("the cat sat")
    assert build_tokenizer(str(tmp_path / "tok")).fingerprint() == tok.fingerprint()


def test_hf_tokenizer_directory(hf_dir):
    tok = build_tokenizer(f"hf:{hf_dir}")
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.mask_id == 50257 and tok.vocab_size == 50258  # mask token added
    assert tok.bos_id == tok.eos_id == tok.pad_id == 50256
    assert tok.decode(tok.encode("Hello world, again")) == "Hello world, again"
    assert tok.encode_batch(["Hello world", "Hello"]) == [[15496, 995], [15496]]
    with pytest.raises(UserError, match="/no/such/dir"):
        build_tokenizer("hf:/no/such/dir")


# --------------------------------------------------------------------------------------------- corpora
def test_file_folder_glob_corpora(tmp_path):
    (tmp_path / "b.txt").write_text("doc one\nline two\n\n\n  \ndoc two\n")
    (tmp_path / "a.txt").write_text("only document, no blank line\nsecond line")
    (tmp_path / "skip.md").write_text("not text corpus")
    single = load_corpus(str(tmp_path / "b.txt"))
    assert list(single) == ["doc one\nline two", "doc two"] and single.name == str(tmp_path / "b.txt")
    assert list(load_corpus(str(tmp_path / "a.txt"))) == ["only document, no blank line\nsecond line"]
    folder = load_corpus(str(tmp_path))
    assert len(folder) == 3 and folder[0].startswith("only document")  # a.txt first; .md ignored
    globbed = load_corpus(str(tmp_path / "*.txt"))
    assert list(globbed) == list(folder) and globbed.fingerprint() == folder.fingerprint()
    assert load_corpus(str(tmp_path), num_docs=2).fingerprint() != folder.fingerprint()
    (tmp_path / "b.txt").write_text("changed\n")
    assert load_corpus(str(tmp_path)).fingerprint() != folder.fingerprint()


def test_hf_dataset_from_disk(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"id": [1, 2, 3], "content": ["first doc", "second doc", "third"]})
    ds.save_to_disk(str(tmp_path / "flat"))
    corpus = load_corpus(f"hf:{tmp_path / 'flat'}")
    assert list(corpus) == ["first doc", "second doc", "third"] and corpus.column == "content"
    datasets.DatasetDict({"validation": ds.select([0]), "train": ds}).save_to_disk(str(tmp_path / "dict"))
    assert len(load_corpus(f"hf:{tmp_path / 'dict'}")) == 3  # the train split
    with pytest.raises(UserError, match="'nope'"):
        load_corpus(f"hf:{tmp_path / 'flat'}", text_column="nope")


def test_builtin_corpus_and_split():
    a, b = load_corpus("builtin:50", seed=1), load_corpus("builtin", num_docs=50, seed=1)
    assert len(a) == 50 and list(a) == list(b) and a.fingerprint() == b.fingerprint()
    assert list(load_corpus("builtin:50", seed=2)) != list(a)
    tok = builtin_tokenizer()
    assert all(tok.decode(tok.encode(doc), skip_special=False) == doc for doc in a)
    train, val = a.split(0.2, seed=0)
    assert (train, val) == a.split(0.2, seed=0) and len(train) + len(val) == 50 and val
    mask = split_mask(10_000, 0.1, seed=5)
    assert abs(mask.mean() - 0.1) < 0.02 and (split_mask(500, 0.1, seed=5) == mask[:500]).all()
    assert (split_mask(10_000, 0.1, seed=6) != mask).any()
    assert split_mask(3, 0.01, 0).sum() == 1 and split_mask(2, 0.99, 0).sum() == 1  # both sides non-empty


# --------------------------------------------------------------------------------------------- packing
@pytest.fixture
def word_corpus(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "eps"]
    docs = [" ".join(rng.choice(words, size=rng.integers(1, 30))) for _ in range(200)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(docs))
    return path


def _docs(path: Path, tok, val_fraction=0.1, seed=0) -> list[list[int]]:
    train, _ = load_corpus(str(path)).split(val_fraction, seed)
    return [[tok.bos_id, *tok.encode(d), tok.eos_id] for d in train]


def test_pack_aligned(word_corpus, tmp_path):
    data = prepare_data(str(word_corpus), "word", 16, "aligned", 0.1, cache_dir=tmp_path / "c", progress=False)
    tok, rows = data.tokenizer, np.asarray(data.train)
    assert rows.dtype == np.uint16 and rows.shape[1] == 16 and (rows[:, 0] == tok.bos_id).all()
    docs = _docs(word_corpus, tok)
    stream = np.concatenate(docs)
    starts = np.concatenate([[0], np.cumsum([len(d) for d in docs])])[:-1]
    expect, s = [], 0  # reference: next row starts at the first document starting at/after the row end
    while s < len(starts) and len(stream) - starts[s] >= 16:
        expect.append(stream[starts[s]: starts[s] + 16])
        s = int(np.searchsorted(starts, starts[s] + 16))
    assert np.array_equal(rows, np.array(expect))
    assert (np.asarray(data.val)[:, 0] == tok.bos_id).all() and data.meta["mode"] == "aligned"


def test_pack_wrap_preserves_stream(word_corpus, tmp_path):
    data = prepare_data(str(word_corpus), "word", 16, "wrap", 0.1, cache_dir=tmp_path / "c", progress=False)
    stream = np.concatenate(_docs(word_corpus, data.tokenizer))
    n = len(stream) // 16
    assert data.train.shape == (n, 16) and np.array_equal(np.asarray(data.train).ravel(), stream[: n * 16])


def test_pack_pad(word_corpus, tmp_path):
    data = prepare_data(str(word_corpus), "word", 20, "pad", 0.1, cache_dir=tmp_path / "c", progress=False)
    tok, docs = data.tokenizer, _docs(word_corpus, data.tokenizer)
    assert data.train.shape == (len(docs), 20)
    for row, doc in zip(np.asarray(data.train), docs):
        k = min(len(doc), 20)
        assert list(row[:k]) == doc[:k] and (row[k:] == tok.pad_id).all()
        if len(doc) <= 20:
            assert row[len(doc) - 1] == tok.eos_id


def test_cache_hit_skips_tokenizing(word_corpus, tmp_path, monkeypatch):
    first = prepare_data(str(word_corpus), "char", 32, "wrap", cache_dir=tmp_path / "c", progress=False)
    assert {p.name for p in first.directory.iterdir()} >= {"train.bin", "val.bin", "meta.json", "tokenizer"}

    def boom(*args, **kwargs):
        raise AssertionError("re-tokenised on a cache hit")

    monkeypatch.setattr(packing, "_tokenize", boom)
    second = prepare_data(str(word_corpus), "char", 32, "wrap", cache_dir=tmp_path / "c", progress=False)
    assert second.directory == first.directory and np.array_equal(second.train, first.train)
    assert second.tokenizer.fingerprint() == first.tokenizer.fingerprint()
    with pytest.raises(ValueError):
        second.train[0, 0] = 1  # read-only memmap
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.startswith(".tmp")]
    with pytest.raises(AssertionError):  # a different seq_len is a different cache entry
        prepare_data(str(word_corpus), "char", 33, "wrap", cache_dir=tmp_path / "c", progress=False)


def test_builtin_rows(tmp_path, monkeypatch):
    data = prepare_data("builtin", "builtin", 64, cache_dir=tmp_path, num_tokens=20_000, progress=False)
    assert data.meta["builtin_rows"] and data.train.shape == (313, 64) and data.val.shape == (16, 64)
    assert (np.asarray(data.train)[:, 0] == 1).all() and (np.asarray(data.val)[:, 0] == 1).all()
    assert not np.array_equal(data.train[:16], data.val)
    monkeypatch.setattr(packing, "_tokenize", lambda *a, **k: 1 / 0)
    again = load_prepared(data.directory)
    assert np.array_equal(again.train, data.train) and again.tokenizer.name == "builtin"
    info = describe(data.directory)
    assert info["train"]["rows"] == 313 and info["entropy_rate_nats"] and len(info["examples"]) == 3
    text = format_info(info)
    assert "entropy rate" in text and "builtin" in text and "vocab_size" in text


def test_batches_deterministic():
    arr = np.arange(40, dtype=np.uint16).reshape(20, 2)
    full = list(batches(arr, 3, seed=1, epoch=0))
    assert len(full) == 6 and full[0].dtype == torch.long and full[0].shape == (3, 2)
    assert all(torch.equal(a, b) for a, b in zip(full, batches(arr, 3, seed=1, epoch=0)))
    assert all(torch.equal(a, b) for a, b in zip(full[2:], batches(arr, 3, seed=1, epoch=0, start=2)))
    assert not torch.equal(torch.cat(full), torch.cat(list(batches(arr, 3, seed=1, epoch=1))))
    r0, r1 = (list(batches(arr, 2, seed=1, rank=r, world_size=2)) for r in (0, 1))
    glob = list(batches(arr, 4, seed=1))
    assert all(torch.equal(torch.cat([a, b]), g) for a, b, g in zip(r0, r1, glob))
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32


# ------------------------------------------------------------------------------------------ bad inputs
def test_bad_inputs(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(UserError, match="nope.txt"):
        load_corpus(str(missing))
    (tmp_path / "empty.txt").write_text("  \n\n \t\n")
    with pytest.raises(UserError, match="empty.txt.*empty"):
        load_corpus(str(tmp_path / "empty.txt"))
    (tmp_path / "bin.txt").write_bytes(b"abc\x00\x01def")
    with pytest.raises(UserError, match="bin.txt.*binary"):
        load_corpus(str(tmp_path / "bin.txt"))
    (tmp_path / "latin.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(UserError, match="latin.txt.*UTF-8"):
        load_corpus(str(tmp_path / "latin.txt"))
    with pytest.raises(UserError, match=r"nomatch\*.txt"):
        load_corpus(str(tmp_path / "nomatch*.txt"))
    with pytest.raises(UserError, match="'sentencepiece:x'.*char.*hf:NAME_OR_DIR"):
        build_tokenizer("sentencepiece:x")
    with pytest.raises(UserError, match="seq_len 1"):
        prepare_data(str(missing), "char", 1, cache_dir=tmp_path)
    with pytest.raises(UserError, match="'zigzag'"):
        prepare_data(str(missing), "char", 8, mode="zigzag", cache_dir=tmp_path)


def test_unknown_hf_dataset_offline(monkeypatch):
    import datasets

    if hasattr(datasets.config, "HF_HUB_OFFLINE"):  # in case another test imported datasets while online
        monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="no_such_user/no_such_dataset_xyz.*save_to_disk"):
        load_corpus("hf:no_such_user/no_such_dataset_xyz")


def test_bpe_files_mismatch(tmp_path):
    (tmp_path / "vocab.json").write_text('{"a": 0, "b": 1, "ab": 2}')
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\nx y\n")
    with pytest.raises(UserError, match="vocab.json.*merges.txt.*'x y'"):
        build_tokenizer(f"gpt2:{tmp_path}")
    (tmp_path / "vocab.json").write_text("{not json")
    with pytest.raises(UserError, match="vocab.json.*unreadable"):
        BPETokenizer(tmp_path)
    with pytest.raises(UserError, match="nodir"):
        build_tokenizer(f"gpt2:{tmp_path / 'nodir'}")
    assert corpora.SPEC_FORMS and tokenizers.SPEC_FORMS
